"""TaxiBJ: BJ??.h5 files with date keys and OpenSTL's dataset.npz."""

from __future__ import annotations

import datetime as dt
import pickle

import h5py
import numpy as np
import pytest
import torch

from mimcast.data import TaxiBJ, build_dataset
from mimcast.errors import DataError

from .writers import taxibj_dates, taxibj_value, write_taxibj

D13 = [dt.date(2013, 7, 1) + dt.timedelta(days=k) for k in range(3)]
D14 = [dt.date(2014, 3, 1) + dt.timedelta(days=k) for k in range(4)]


@pytest.fixture()
def bj(tmp_path):
    # 2013-07-02 lacks slot 5 and must be dropped; complete days: 07-01, 07-03, 03-01..03-04.
    write_taxibj(tmp_path / "BJ13_M32x32_T30_InOut.h5", taxibj_dates(D13, {D13[1]: 5}))
    dates14 = taxibj_dates(D14)
    data = write_taxibj(tmp_path / "BJ14_M32x32_T30_InOut.h5", dates14)
    with h5py.File(tmp_path / "BJ14_M32x32_T30_InOut.h5", "r+") as f:
        data[10, 0, 0, 0] = -7.0  # a negative in the train part (03-01): set to 0
        data[-1, 1, 5, 5] = 1e6  # a huge value in the test part: the scaler must not see it
        f["data"][...] = data
    return tmp_path


def opts(**kw):
    return {"test_days": 2, "val_days": 1, **kw}


def test_splits_windows_and_time_order(bj) -> None:
    parts = {s: build_dataset("taxibj", s, root=bj, **opts()) for s in ("train", "val", "test")}
    # 8 consecutive slots in one day: 41 windows; days not adjacent or in different parts
    # never share a window; the test days 03-03 and 03-04 are adjacent: 96 - 8 + 1.
    assert [len(p) for p in parts.values()] == [3 * 41, 41, 89]
    ds = parts["train"]
    assert ds.seq_len == 8 and ds.context_len == 4 and ds.frame_shape == (2, 32, 32)
    starts = np.array([ds.time_index(i)[0] for i in range(len(ds))])
    assert (np.diff(starts) > 0).all()  # forward time order
    for i in (0, 40, 41, 122):
        assert (np.diff(ds.time_index(i)) == 1).all()
    days = {int(k) // 48 for i in range(len(ds)) for k in ds.time_index(i)}
    assert days == {D13[0].toordinal(), D13[2].toordinal(), D14[0].toordinal()}
    test_days = {int(k) // 48 for i in range(89) for k in parts["test"].time_index(i)}
    assert test_days == {D14[2].toordinal(), D14[3].toordinal()}
    val0 = build_dataset("taxibj", "val", root=bj, test_days=2)  # val_days=0: the test part
    assert len(val0) == 89 and torch.equal(
        val0[5], build_dataset("taxibj", "test", root=bj, test_days=2)[5]
    )


def test_values_scaler_on_train_only_and_inverse(bj) -> None:
    ds = TaxiBJ(bj, "train", **opts())
    train_max = taxibj_value(f"{D14[0]:%Y%m%d}48".encode())  # latest train slot, inflow
    np.testing.assert_allclose(ds.normalizer.scale + ds.normalizer.offset, train_max)
    assert float(ds.normalizer.offset) == 0.0  # the -7 was set to 0 before fitting
    for i in range(0, len(ds), 7):
        x = ds[i]
        assert x.dtype == torch.float32 and x.shape == (8, 2, 32, 32)
        assert x.min() >= 0.0 and x.max() <= 1.0
    # Window 41 * 2 + 3 starts at 03-01 slot 4 (rows 3..10 of BJ14): holds the -7 at row 10.
    w = ds[41 * 2 + 3]
    with h5py.File(bj / "BJ14_M32x32_T30_InOut.h5", "r") as f:
        raw = f["data"][3:11]
    np.testing.assert_allclose(ds.to_units(w).numpy(), np.maximum(raw, 0), rtol=1e-5, atol=1e-2)
    assert ds.to_units(w)[7, 0, 0, 0] == 0.0
    np.testing.assert_allclose(ds.from_units(np.maximum(raw, 0)), w.numpy(), atol=1e-6)
    test = TaxiBJ(bj, "test", **opts())
    assert test[len(test) - 1].max() > 30  # 1e6, the huge test value is beyond the train range
    assert "vehicles" in ds.units
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers reopen the h5 files
    assert torch.equal(clone[7], ds[7])


def test_openstl_npz(tmp_path) -> None:
    rng = np.random.default_rng(0)
    arrays = {k: rng.uniform(-1, 1, (n, 4, 2, 32, 32)) for k, n in
              (("X_train", 5), ("Y_train", 5), ("X_test", 3), ("Y_test", 3))}  # fmt: skip
    np.savez(tmp_path / "dataset.npz", **arrays)
    ds = build_dataset("taxibj", "train", root=tmp_path)
    assert len(ds) == 5 and ds.seq_len == 8 and ds.context_len == 4
    expect = np.concatenate([arrays["X_train"][2], arrays["Y_train"][2]])
    np.testing.assert_allclose(ds[2].numpy(), (expect + 1) / 2, atol=1e-6)
    np.testing.assert_allclose(ds.to_units(ds[2]).numpy(), expect, atol=1e-6)  # file units
    veh = TaxiBJ(tmp_path / "dataset.npz", "test", data_max=1292.0)
    assert len(veh) == 3 and veh.units.startswith("vehicles")
    expect = np.concatenate([arrays["X_test"][1], arrays["Y_test"][1]])
    np.testing.assert_allclose(veh.to_units(veh[1]).numpy(), (expect + 1) / 2 * 1292, atol=1e-3)
    with pytest.raises(DataError, match="holds 4 -> 4 windows"):
        TaxiBJ(tmp_path, "train", seq_len=10, context_len=5)


def test_bad_taxibj_input(tmp_path, bj) -> None:
    for name in ("empty", "nodate", "baddate", "nan"):
        (tmp_path / name).mkdir()
    with pytest.raises(DataError, match=r"empty: no BJ\*_M32x32_T30_InOut.h5 files and no dataset"):
        TaxiBJ(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        TaxiBJ(tmp_path / "missing")
    with h5py.File(tmp_path / "nodate" / "BJ15_M32x32_T30_InOut.h5", "w") as f:
        f["data"] = np.zeros((48, 2, 32, 32))
    with pytest.raises(DataError, match="BJ15_M32x32_T30_InOut.h5: no key 'date'; keys: data"):
        TaxiBJ(tmp_path / "nodate")
    write_taxibj(tmp_path / "baddate" / "BJ13_M32x32_T30_InOut.h5", [b"2013070149"] * 2, hw=4)
    with pytest.raises(DataError, match="date 0 is b'2013070149', expected YYYYMMDDss"):
        TaxiBJ(tmp_path / "baddate")
    path = tmp_path / "nan" / "BJ13_M32x32_T30_InOut.h5"
    data = write_taxibj(path, taxibj_dates(D14), hw=4)
    data[30, 1, 2, 2] = np.nan  # day 1: train, found when the scaler is fitted
    data[180, 0, 0, 0] = np.inf  # day 4: test, found when its window is read
    with h5py.File(path, "r+") as f:
        f["data"][...] = data
    with pytest.raises(DataError, match="InOut.h5: NaN or inf values in data row 30"):
        TaxiBJ(tmp_path / "nan", test_days=1)
    data[30, 1, 2, 2] = 1.0
    with h5py.File(path, "r+") as f:
        f["data"][...] = data
    test = TaxiBJ(tmp_path / "nan", "test", test_days=1)
    with pytest.raises(DataError, match=r"rows 180-187 \(window 36\) contains NaN or inf"):
        test[36]
    with pytest.raises(DataError, match="6 complete days, need more than test_days"):
        TaxiBJ(bj, test_days=28)
    with h5py.File(tmp_path / "nodate" / "BJ15_M32x32_T30_InOut.h5", "w") as f:
        f["data"] = np.zeros((48, 32, 32))
        f["date"] = np.array(taxibj_dates(D14[:1]), dtype="S10")
    with pytest.raises(DataError, match=r"data must be \(T, 2, H, W\), got shape \(48, 32, 32\)"):
        TaxiBJ(tmp_path / "nodate")
