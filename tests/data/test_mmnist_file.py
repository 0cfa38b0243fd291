"""Moving MNIST from files: mnist_test_seq.npy (memory-mapped) and the PredRNN npz layout."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from mimcast.data import MovingMNISTFile, build_dataset
from mimcast.errors import DataError


def write_seq(path, n: int, seed: int = 0) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 256, (20, n, 64, 64), dtype=np.uint8)
    np.save(path, arr)  # [T, N, H, W] like mnist_test_seq.npy
    return arr


def write_predrnn(path, n: int, compressed: bool = False, **extra) -> np.ndarray:
    rng = np.random.default_rng(1)
    data = rng.random((n * 20, 1, 64, 64), dtype=np.float32)  # (frames, C, H, W) in [0, 1]
    clips = np.zeros((2, n, 2), dtype=np.int32)
    clips[0, :, 0] = np.arange(n) * 20
    clips[1, :, 0] = np.arange(n) * 20 + 10
    clips[:, :, 1] = 10
    arrays = {"clips": clips, "dims": np.array([[1, 64, 64]]), "input_raw_data": data, **extra}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return data


def test_npy_items_units_and_split(tmp_path) -> None:
    arr = write_seq(tmp_path / "mnist_test_seq.npy", 6)
    ds = build_dataset("mmnist-file", "test", root=tmp_path / "mnist_test_seq.npy")
    assert len(ds) == 6 and ds.seq_len == 20 and ds.context_len == 10
    x = ds[2]
    assert x.shape == (20, 1, 64, 64) and x.dtype == torch.float32
    np.testing.assert_allclose(x[:, 0].numpy(), arr[:, 2] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.to_units(x)[:, 0].numpy(), arr[:, 2], atol=1e-3)
    back = ds.from_units(arr[:, 2].astype(np.float32))
    assert isinstance(back, np.ndarray) and np.allclose(back, x[:, 0].numpy())
    parts = {
        s: MovingMNISTFile(tmp_path / "mnist_test_seq.npy", s, fractions=(0.5, 0.2, 0.3))
        for s in ("train", "val", "test")
    }
    assert [len(p) for p in parts.values()] == [3, 1, 2]
    np.testing.assert_allclose(parts["val"][0][:, 0].numpy(), arr[:, 3] / 255.0, rtol=1e-6)
    short = MovingMNISTFile(tmp_path / "mnist_test_seq.npy", seq_len=12, context_len=6)
    assert short[0].shape == (12, 1, 64, 64) and short.context_len == 6


def test_reads_part_of_a_larger_mapped_file(tmp_path) -> None:
    path = tmp_path / "mnist_test_seq.npy"
    write_seq(path, 100)  # 8 MiB on disk
    size = path.stat().st_size
    tracemalloc.start()
    ds = build_dataset("mmnist-file", "test", root=path)
    x = ds[57]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(ds.array, np.memmap)
    assert x.numel() * 4 < peak < size / 8  # one float item, far less than the file
    np.testing.assert_array_equal((x[:, 0] * 255).round().numpy(), np.load(path)[:, 57])


def test_predrnn_npz_layout(tmp_path) -> None:
    data = write_predrnn(tmp_path / "moving-mnist-test.npz", 4)
    tracemalloc.start()
    ds = build_dataset("mmnist-file", "test", root=tmp_path / "moving-mnist-test.npz")
    x = ds[3]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(ds.array, np.memmap) and peak < data.nbytes / 2  # stored members mapped
    assert len(ds) == 4 and ds.seq_len == 20 and ds.context_len == 10
    np.testing.assert_array_equal(x.numpy(), data[60:80])
    write_predrnn(tmp_path / "c.npz", 4, compressed=True)
    np.testing.assert_array_equal(MovingMNISTFile(tmp_path / "c.npz")[1].numpy(), data[20:40])


def test_bad_files(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        MovingMNISTFile(tmp_path / "mnist_test_seq.npy")
    np.save(tmp_path / "rank3.npy", np.zeros((20, 64, 64), np.uint8))
    with pytest.raises(DataError, match=r"rank3.npy: expected rank 4 .* got shape \(20, 64, 64\)"):
        MovingMNISTFile(tmp_path / "rank3.npy")
    nan = np.random.default_rng(0).random((20, 3, 64, 64), dtype=np.float32)
    nan[5, 1, 3, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    ds = MovingMNISTFile(tmp_path / "nan.npy")
    assert ds[0].shape == (20, 1, 64, 64)
    with pytest.raises(DataError, match=r"nan.npy sequence 1 contains NaN or inf"):
        ds[1]
    write_seq(tmp_path / "ok.npy", 2)
    with pytest.raises(DataError, match="seq_len 30 exceeds the 20 frames"):
        MovingMNISTFile(tmp_path / "ok.npy", seq_len=30)
    with pytest.raises(DataError, match="the val split is empty"):
        MovingMNISTFile(tmp_path / "ok.npy", "val", fractions=(1.0, 0.0, 0.0))
    write_predrnn(tmp_path / "dims.npz", 2, dims=np.array([[1, 32, 32]]))
    with pytest.raises(DataError, match=r"dims \[1, 32, 32\] disagree"):
        MovingMNISTFile(tmp_path / "dims.npz")
    np.savez(tmp_path / "nokey.npz", clips=np.zeros((2, 1, 2), int))
    with pytest.raises(DataError, match="missing key.*input_raw_data.*keys: clips"):
        MovingMNISTFile(tmp_path / "nokey.npz")
    np.savez(tmp_path / "clips.npz", clips=np.zeros((3, 2)), input_raw_data=np.zeros((4, 1, 8, 8)))
    with pytest.raises(DataError, match=r"clips must have shape \(2, N, 2\)"):
        MovingMNISTFile(tmp_path / "clips.npz")
    np.savez(
        tmp_path / "far.npz", clips=np.full((2, 1, 2), 3), input_raw_data=np.zeros((4, 1, 8, 8))
    )
    with pytest.raises(DataError, match="clips point outside input_raw_data"):
        MovingMNISTFile(tmp_path / "far.npz")
