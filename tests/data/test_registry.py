"""The registry and the common SequenceDataset contract."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mimcast.data import (
    SequenceDataset,
    build_dataset,
    dataset_options,
    list_datasets,
)
from mimcast.errors import DataError


def test_names_and_options() -> None:
    assert list_datasets() == [
        "custom", "kth", "mmnist", "mmnist-accel", "mmnist-file", "taxibj", "video"
    ]  # fmt: skip
    assert {"seed", "seq_len", "context_len", "num_digits", "canvas", "digit_source"} <= set(
        dataset_options("mmnist")
    )
    assert {"accel_range", "jump_prob"} <= set(dataset_options("mmnist-accel"))
    with pytest.raises(DataError, match="unknown dataset 'mnist'; valid: custom, kth, mmnist"):
        build_dataset("mnist", "train")
    with pytest.raises(
        DataError, match=r"unknown option\(s\) digits for dataset 'mmnist'.*num_digits"
    ):
        build_dataset("mmnist", "train", digits=3)
    with pytest.raises(DataError, match="unknown split 'training'; valid: train, val, test"):
        build_dataset("mmnist", "training")
    with pytest.raises(DataError, match="dataset 'custom' needs root"):
        build_dataset("custom", "train")


def test_contract_of_generated_dataset() -> None:
    ds = build_dataset("mmnist", "val", num_sequences=6, seq_len=12, context_len=4, canvas=48)
    assert isinstance(ds, SequenceDataset) and isinstance(ds, torch.utils.data.Dataset)
    assert (ds.seq_len, ds.context_len, ds.frame_shape) == (12, 4, (1, 48, 48))
    assert ds.value_range == (0.0, 1.0) and isinstance(ds.units, str)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch.shape == (3, 12, 1, 48, 48) and batch.dtype == torch.float32
    arr = np.full((2, 2), 0.5, np.float32)
    assert isinstance(ds.to_units(arr), np.ndarray) and ds.to_units(arr)[0, 0] == 127.5
    t = torch.full((2, 2), 127.5)
    assert isinstance(ds.from_units(t), torch.Tensor) and ds.from_units(t)[0, 0] == 0.5
    assert ds[-1].shape == ds[5].shape
    with pytest.raises(IndexError):
        ds[6]


def test_workers_reopen_files(tmp_path) -> None:
    x = np.arange(40 * 4 * 4, dtype=np.float32).reshape(40, 4, 4)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["x"] = x
    ds = build_dataset("custom", "train", root=tmp_path / "s.h5", seq_len=4, context_len=2)
    serial = torch.cat(list(DataLoader(ds, batch_size=8)))
    parallel = torch.cat(list(DataLoader(ds, batch_size=8, num_workers=2)))
    assert serial.shape == (29, 4, 1, 4, 4) and torch.equal(serial, parallel)
    np.testing.assert_allclose(ds.to_units(serial[3]).numpy()[:, 0], x[3:7], rtol=1e-6)
