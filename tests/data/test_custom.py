"""The user's own data: .npy/.npz, HDF5, netCDF and Zarr; axes, windows, splits, scaling."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

from mimcast.data import CustomDataset, build_dataset
from mimcast.errors import DataError


def series(n: int = 100, c: int | None = None, hw: int = 6) -> np.ndarray:
    """Values encode the time step, so windows can be checked for order."""
    t = np.arange(n, dtype=np.float32)[:, None, None]
    x = np.broadcast_to(t, (n, hw, hw)).copy()
    if c is not None:
        x = np.stack([x * (k + 1) for k in range(c)], axis=1)  # (T, C, H, W)
    return x


def test_npy_series_windows_split_minmax_inverse(tmp_path) -> None:
    x = series()
    x[95] = 1e4  # in the test part: the scaler must not see it
    np.save(tmp_path / "s.npy", x)
    opts = {"seq_len": 10, "context_len": 5, "stride": 5}
    parts = {
        s: build_dataset("custom", s, root=tmp_path / "s.npy", **opts)
        for s in ("train", "val", "test")
    }
    # train steps 0-79 -> starts 0..70 by 5; val 80-89 -> 80; test 90-99 -> 90.
    assert [len(p) for p in parts.values()] == [15, 1, 1]
    tr = parts["train"]
    assert tr.frame_shape == (1, 6, 6) and tr.value_range == (0.0, 1.0)
    np.testing.assert_allclose(float(tr.normalizer.scale), 79.0)  # max of steps 0-79
    w = tr[3]
    assert w.shape == (10, 1, 6, 6) and w.dtype == torch.float32
    np.testing.assert_allclose(w[:, 0, 0, 0].numpy() * 79, np.arange(15, 25), rtol=1e-6)
    np.testing.assert_allclose(parts["test"].to_units(parts["test"][0])[5, 0].numpy(), 1e4)
    back = tr.from_units(torch.from_numpy(x[15:25, None]))
    assert isinstance(back, torch.Tensor) and torch.allclose(back, w)
    assert parts["val"][0][0, 0, 0, 0] * 79 == pytest.approx(80, rel=1e-6)


def test_netcdf_named_axes(tmp_path) -> None:
    x = series(40, c=2)  # (T, C, H, W)
    da = xr.DataArray(
        np.transpose(x, (2, 0, 3, 1)), dims=("lat", "time", "lon", "var"), name="flow"
    )
    xr.Dataset({"flow": da, "other": da.isel(var=0)}).to_netcdf(
        tmp_path / "f.nc", engine="h5netcdf"
    )
    ds = build_dataset(
        "custom", "test", root=tmp_path / "f.nc", key="flow", time_axis="time",
        channel_axis="var", seq_len=4, context_len=2, normalize="none", units="m/s",
    )  # fmt: skip
    assert ds.frame_shape == (2, 6, 6) and len(ds) == 1 and ds.units == "m/s"
    np.testing.assert_array_equal(ds[0].numpy(), x[36:40])  # test part: steps 36-39
    assert ds.value_range == (0.0, 2 * 31.0)  # observed on the training part (steps 0-31)
    assert torch.equal(pickle.loads(pickle.dumps(ds))[0], ds[0])
    with pytest.raises(DataError, match=r"f.nc: 2 variables, choose one with key=: flow, other"):
        CustomDataset(tmp_path / "f.nc")
    with pytest.raises(
        DataError, match="f.nc:flow: no axis named 'times'; axes: lat, time, lon, var"
    ):
        CustomDataset(tmp_path / "f.nc", key="flow", time_axis="times", channel_axis="var")
    with pytest.raises(DataError, match="f.nc: no variable 'temp'; variables: flow, other"):
        CustomDataset(tmp_path / "f.nc", key="temp")


def test_zarr_set_of_sequences_with_scale(tmp_path) -> None:
    x = np.stack([series(12) + 100 * k for k in range(8)])  # (N, T, H, W)
    da = xr.DataArray(x, dims=("sample", "time", "y", "x"), name="v")
    da.to_dataset().to_zarr(tmp_path / "d.zarr", consolidated=False)
    opts = {"sequence_axis": "sample", "time_axis": "time", "seq_len": 6, "context_len": 3}
    opts |= {"stride": 3, "fractions": (0.5, 0.25, 0.25), "normalize": "scale", "scale": 10.0}
    parts = {s: CustomDataset(tmp_path / "d.zarr", s, **opts) for s in ("train", "val", "test")}
    # 4 / 2 / 2 sequences, each with windows starting at 0, 3, 6.
    assert [len(p) for p in parts.values()] == [12, 6, 6]
    v = parts["val"][4]  # sequence 5, start 3
    np.testing.assert_allclose(v[:, 0, 0, 0].numpy(), (500 + np.arange(3, 9)) / 10, rtol=1e-6)
    np.testing.assert_allclose(parts["val"].to_units(v)[:, 0].numpy(), x[5, 3:9], rtol=1e-6)


def test_hdf5_and_npz_keys_and_per_channel(tmp_path) -> None:
    x = series(30, c=2)  # channel 1 is twice channel 0
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["group/field"] = x
        f["meta"] = np.zeros(3)
    ds = CustomDataset(
        tmp_path / "a.h5", key="group/field", channel_axis=1, seq_len=4, context_len=2,
        per_channel=True,
    )  # fmt: skip
    np.testing.assert_allclose(ds.normalizer.scale.reshape(-1), [23.0, 46.0])  # train 0-23
    w = ds[len(ds) - 1]  # steps 20-23 on both channels -> the same model values
    np.testing.assert_allclose(w[:, 0].numpy(), w[:, 1].numpy())
    with pytest.raises(
        DataError, match="a.h5: 2 datasets, choose one with key=: group/field, meta"
    ):
        CustomDataset(tmp_path / "a.h5")
    np.savez(tmp_path / "b.npz", a=x, b=x[:, 0])
    ds = CustomDataset(tmp_path / "b.npz", key="b", seq_len=4, context_len=2)
    assert isinstance(ds.src.obj, np.memmap) and ds.frame_shape == (1, 6, 6)
    with pytest.raises(DataError, match="b.npz: no array 'c'; arrays: a, b"):
        CustomDataset(tmp_path / "b.npz", key="c")


def test_bad_custom_input(tmp_path) -> None:
    np.save(tmp_path / "s.npy", series(30))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DataError, match="does not exist"):
        CustomDataset(tmp_path / "missing.npy")
    with pytest.raises(DataError, match=r"s.npy: rank 3 \(shape \(30, 6, 6\)\), expected 4"):
        CustomDataset(tmp_path / "s.npy", channel_axis=1)
    with pytest.raises(DataError, match="axis names need netCDF or Zarr"):
        CustomDataset(tmp_path / "s.npy", time_axis="time")
    with pytest.raises(DataError, match="time_axis=5 out of range for rank 3"):
        CustomDataset(tmp_path / "s.npy", time_axis=5)
    with pytest.raises(
        DataError, match=r"series of length 30 shorter than one window \(seq_len 40\)"
    ):
        CustomDataset(tmp_path / "s.npy", seq_len=40)
    with pytest.raises(DataError, match=r"the val part \(steps 24-26, 3 steps\) is shorter than"):
        CustomDataset(tmp_path / "s.npy", "val")
    with pytest.raises(DataError, match="normalize='scale' needs scale"):
        CustomDataset(tmp_path / "s.npy", normalize="scale")
    with pytest.raises(DataError, match="unknown normalize 'zscore'"):
        CustomDataset(tmp_path / "s.npy", normalize="zscore")
    bad = series(30)
    bad[7, 2, 2] = np.nan
    bad[28, 0, 0] = np.inf
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match="nan.npy: NaN or inf values at time index 7"):
        CustomDataset(tmp_path / "nan.npy", seq_len=4, context_len=2)
    bad[7, 2, 2] = 0
    np.save(tmp_path / "nan.npy", bad)
    test = CustomDataset(tmp_path / "nan.npy", "test", seq_len=2, context_len=1)
    with pytest.raises(DataError, match=r"nan.npy \(time 28-29\) contains NaN or inf"):
        test[test.windows[:, 1].tolist().index(28)]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="unknown format"):
        CustomDataset(tmp_path / "notes.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "nan.npy", "notes.txt"])
