"""Scheduled-sampling schedules are pure functions; masks are reproducible from (seed, step)."""

from __future__ import annotations

import math

import pytest
import torch

from mimcast.errors import ConfigError
from mimcast.training.sampling import SamplingSchedule, bernoulli_mask, linear_eta, reverse_etas


def test_linear_eta_matches_predrnn() -> None:
    assert linear_eta(0) == 1.0
    assert linear_eta(10_000) == pytest.approx(0.8)
    assert linear_eta(49_999) == pytest.approx(2e-5)
    assert linear_eta(50_000) == 0.0
    assert linear_eta(80_000) == 0.0
    assert linear_eta(250, start=1.0, decay=1 / 500) == pytest.approx(0.5)


def test_reverse_schedule_matches_predrnn_v2() -> None:
    assert reverse_etas(0) == (0.5, 0.5)
    assert reverse_etas(24_999) == (0.5, 0.5)
    r, e = reverse_etas(30_000)
    assert r == pytest.approx(1 - 0.5 * math.exp(-1))
    assert e == pytest.approx(0.5 - 0.5 * 5_000 / 25_000)
    assert reverse_etas(50_000) == (1.0, 0.0)
    r_mnist, _ = reverse_etas(27_500, alpha=2_500)
    assert r_mnist == pytest.approx(1 - 0.5 * math.exp(-1))


def test_bernoulli_mask_frequency_and_shape() -> None:
    gen = torch.Generator().manual_seed(0)
    m = bernoulli_mask(0.3, 400, 9, gen)
    assert m.shape == (400, 9, 1, 1, 1)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert abs(m.mean().item() - 0.3) < 0.03


def test_masks_are_reproducible_and_follow_the_schedule() -> None:
    s = SamplingSchedule("linear", eta_decay=1 / 100)
    a = s.masks(step=10, batch=8, seq_len=20, context_len=10, seed=3)
    b = s.masks(step=10, batch=8, seq_len=20, context_len=10, seed=3)
    c = s.masks(step=11, batch=8, seq_len=20, context_len=10, seed=3)
    torch.testing.assert_close(a[0], b[0])
    assert a[0].shape == (8, 9, 1, 1, 1) and a[1] is None
    assert not torch.equal(a[0], c[0])
    assert s.masks(step=100, batch=8, seq_len=20, context_len=10, seed=3) == (None, None)
    sizes = dict(batch=8, seq_len=20, context_len=10, seed=0)
    assert SamplingSchedule("none").masks(0, **sizes) == (None, None)
    mask, ctx = SamplingSchedule("reverse").masks(0, **sizes)
    assert mask.shape == (8, 9, 1, 1, 1) and ctx.shape == (8, 9, 1, 1, 1)
    with pytest.raises(ConfigError, match="train.sampling.kind must be one of linear"):
        SamplingSchedule("cosine")
    with pytest.raises(ConfigError, match="reverse_s2 .* must be above reverse_s1"):
        SamplingSchedule("reverse", reverse_s1=10, reverse_s2=5)


def test_masks_keep_the_true_frame_at_the_schedule_s_rate() -> None:
    """At eta 0.9 (linear, step 10 of decay 1/100) nine in ten future frames are true; reverse
    sampling before s1 keeps half the context and half the future true: 4,608 draws each,
    within 4 standard deviations of the rate."""
    sizes = dict(batch=256, seq_len=20, context_len=10, seed=1)
    mask, _ = SamplingSchedule("linear", eta_decay=1 / 100).masks(step=10, **sizes)
    draws = mask.numel()
    assert abs(float(mask.mean()) - 0.9) < 4 * math.sqrt(0.9 * 0.1 / draws)
    mask, ctx = SamplingSchedule("reverse").masks(step=0, **sizes)
    for m in (mask, ctx):
        assert abs(float(m.mean()) - 0.5) < 4 * math.sqrt(0.25 / m.numel())
