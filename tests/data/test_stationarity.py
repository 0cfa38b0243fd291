"""The stationary / non-stationary split: its score, its threshold, and that it sorts sequences
made to be one or the other."""

from __future__ import annotations

import numpy as np
import pytest

from mimcast.data import AcceleratedMovingMNIST, build_dataset
from mimcast.data.stationarity import score, scores
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


def test_motion_energy_is_the_mean_absolute_difference_of_consecutive_frames() -> None:
    """Uniform frames (the blur leaves them as they are) of values 0, 1, 4: differences 1 and
    3, whose coefficient of variation is 1/2 (squared differences, 1 and 9, would give 4/5)."""
    frames = np.ones((3, 1, 16, 16)) * np.array([0.0, 1.0, 4.0])[:, None, None, None]
    assert score(frames) == pytest.approx(0.5, abs=1e-9)


def _made_sequences() -> list[np.ndarray]:
    """40 sequences, each steady (at one of several speeds) or changing (at rest, then at one of
    several speeds); the training half is half of each, validation mostly steady, test mostly
    changing, so that only the training median sorts val and test right."""
    steady = [square([1.0 + k % 4] * 9, size=64) for k in range(20)]
    changing = [square([0.0] * (3 + k % 3) + [4.0 + k % 4] * (6 - k % 3), 64) for k in range(20)]
    order = "sc" * 10 + "s" * 8 + "c" * 2 + "s" * 2 + "c" * 8
    pools = {"s": iter(steady), "c": iter(changing)}
    return [next(pools[kind]) for kind in order], order


def test_the_split_sorts_made_sequences_and_uses_the_training_median(tmp_path) -> None:
    seqs, order = _made_sequences()
    np.save(tmp_path / "seq.npy", np.stack(seqs)[:, :, 0])  # (N, T, H, W)
    opts = dict(root=tmp_path / "seq.npy", sequence_axis=0, time_axis=1, seq_len=10,
                context_len=5, normalize="none", fractions=(0.5, 0.25, 0.25))  # fmt: skip
    train_median = float(np.median(scores(build_dataset("custom", "train", **opts))))
    for split, (a, b) in (("train", (0, 20)), ("val", (20, 30)), ("test", (30, 40))):
        sta = build_dataset("custom", split, stationarity="stationary", **opts)
        non = build_dataset("custom", split, stationarity="non-stationary", **opts)
        assert sta.threshold == non.threshold == pytest.approx(train_median, rel=1e-12), split
        assert [a + int(i) for i in sta.indices] == [k for k in range(a, b) if order[k] == "s"]
        assert [a + int(i) for i in non.indices] == [k for k in range(a, b) if order[k] == "c"]
        assert sta.frame_shape == (1, 64, 64) and len(sta) + len(non) == b - a


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
