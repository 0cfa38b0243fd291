"""`mimcast bench` end to end on a tiny config: every path measured, in its own process."""

from __future__ import annotations

import pytest

from mimcast import ModelConfig
from mimcast.cli.bench import BenchConfig, format_bench, run_bench


@pytest.fixture(scope="module")
def tiny_bench() -> dict:
    model = ModelConfig(
        name="mim", in_channels=1, height=16, width=16, patch_size=4, hidden=(4, 4),
        filter_size=3,
    )  # fmt: skip
    cfg = BenchConfig(
        model=model, batch=2, seq_len=6, context_len=3, steps=1, grad_checkpointing=True,
        threads=1,
    )  # fmt: skip
    return run_bench(cfg)


def test_bench_measures_every_path_and_their_ratio(tiny_bench) -> None:
    for path in ("optimised", "checkpointed", "plain_fp32"):
        m = tiny_bench[path]
        assert m["train_seq_s"] > 0 and m["infer_seq_s"] > 0
        assert 0 < m["train_peak_rss_mb"] <= m["peak_rss_mb"]
        assert 0 < m["infer_peak_rss_mb"] <= m["peak_rss_mb"]
        assert m["train_flops"] > 0 and m["infer_flops"] > 0
    o, p = tiny_bench["optimised"], tiny_bench["plain_fp32"]
    # The same model and shapes: both paths do the same arithmetic.
    assert o["train_flops"] == p["train_flops"] and o["infer_flops"] == p["infer_flops"]
    assert o["conv_calls"] > 0 and o["conv_ceiling_train_s"] > 0


def test_checkpointing_recomputes_the_forward_in_backward(tiny_bench) -> None:
    o, c = tiny_bench["optimised"], tiny_bench["checkpointed"]
    assert c["train_flops"] > o["train_flops"]  # each step's forward runs again in backward
    assert c["infer_flops"] == o["infer_flops"]  # inference stores nothing either way


def test_bench_report_names_every_path(tiny_bench) -> None:
    text = format_bench(tiny_bench)
    assert "optimised + activation checkpointing" in text
    assert "plain eager fp32" in text and "% of the ceiling" in text
    assert "| train peak RSS MB | infer peak RSS MB |" in text
    assert "3->3" in text and "mim (paper) 2x4, filter 3" in text  # the config measured
    assert "no AMX" in text or "(AMX)" in text  # the machine, next to every timing


def test_the_printed_ratio_is_the_printed_speeds_divided(tiny_bench) -> None:
    """Read back from the report as printed: the ratio row is the optimised row's seq/s over
    the plain row's, for training and for inference (to the rounding of the printed numbers)."""
    rows = {}
    for line in format_bench(tiny_bench).splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7:
            rows[cells[0]] = cells[1:3]
    fast = [float(v) for v in rows["optimised (bf16-mixed, channels_last)"]]
    plain = [float(v) for v in rows["plain eager fp32"]]
    ratio = [float(v.rstrip("x")) for v in rows["ratio optimised / plain"]]
    for f, p, r in zip(fast, plain, ratio, strict=True):
        assert r == pytest.approx(f / p, abs=0.006 + 0.01 * f / p)
