"""The stationary / non-stationary split: its score, its threshold, and that it sorts sequences
made to be one or the other."""

from __future__ import annotations

import numpy as np
import pytest

from mimcast.data import AcceleratedMovingMNIST, build_dataset
from mimcast.data.stationarity import score
from mimcast.errors import DataError


def square(speeds: list[float], size: int = 128, side: int = 12) -> np.ndarray:
    """A textured square moving right by speeds[t] pixels at step t: (T, 1, size, size)."""
    rng = np.random.default_rng(0)
    tex = rng.random((side, side))
    frames, x = [], 2.0
    for s in [0.0, *speeds]:
        x += s
        f = np.zeros((size, size))
        c = int(round(x))
        f[20 : 20 + side, c : c + side] = tex
        frames.append(f)
    return np.stack(frames)[:, None]


def test_steady_motion_scores_low_and_changing_motion_high() -> None:
    steady = [score(square([3.0] * 15)), score(square([1.0] * 15)), score(square([5.0] * 15))]
    changing = [
        score(square([0.0] * 8 + [5.0] * 7)),  # rests, then moves
        score(square([float(t) / 2 for t in range(15)])),  # accelerates
        score(square([5.0] * 7 + [0.5] * 8)),  # brakes
    ]
    assert max(steady) < 0.1 < min(changing)
    assert score(np.zeros((10, 1, 16, 16))) == 0.0  # no motion at all


def test_the_split_sorts_made_sequences_and_uses_the_training_median(tmp_path) -> None:
    # a custom data set of 40 sequences: the even ones steady, the odd ones changing
    seqs = [square([3.0] * 9) if k % 2 == 0 else square([0.0] * 5 + [6.0] * 4) for k in range(40)]
    np.save(tmp_path / "seq.npy", np.stack(seqs)[:, :, 0])  # (N, T, H, W)
    opts = dict(sequence_axis=0, time_axis=1, seq_len=10, context_len=5, normalize="none",
                fractions=(0.5, 0.25, 0.25))  # fmt: skip
    for split, (a, b) in (("train", (0, 20)), ("val", (20, 30)), ("test", (30, 40))):
        sta = build_dataset("custom", split, root=tmp_path / "seq.npy", stationarity="stationary",
                            **opts)  # fmt: skip
        non = build_dataset("custom", split, root=tmp_path / "seq.npy",
                            stationarity="non-stationary", **opts)  # fmt: skip
        assert [a + int(i) for i in sta.indices] == list(range(a, b, 2)), split
        assert [a + int(i) for i in non.indices] == list(range(a + 1, b, 2)), split
        assert sta.frame_shape == (1, 128, 128) and len(sta) + len(non) == b - a


def test_on_moving_mnist_the_non_stationary_side_has_the_larger_speed_changes() -> None:
    """On mmnist-accel the split, made from pixels alone, agrees with the generator's own
    velocities: the sequences it calls non-stationary change their speed more (relative to
    their mean speed)."""
    opts = dict(num_sequences=120, num_digits=1, accel_range=(0.0, 0.6), seq_len=16)
    ds = AcceleratedMovingMNIST("test", **opts)
    change = []
    for i in range(len(ds)):
        speed = np.linalg.norm(ds.trajectory(i)["velocities"][:-1, 0], axis=1)
        change.append(np.abs(np.diff(speed)).mean() / speed.mean())
    change = np.array(change)
    non = build_dataset("mmnist-accel", "test", stationarity="non-stationary", **opts)
    sta = build_dataset("mmnist-accel", "test", stationarity="stationary", **opts)
    assert change[non.indices].mean() > 2 * change[sta.indices].mean()


def test_bad_stationarity_options() -> None:
    with pytest.raises(DataError, match="stationarity must be one of stationary, non-stationary"):
        build_dataset("mmnist", "test", num_sequences=4, stationarity="calm")
    with pytest.raises(DataError, match="stationarity_quantile must be in"):
        build_dataset("mmnist", "test", num_sequences=4, stationarity="stationary",
                      stationarity_quantile=1.5)  # fmt: skip
