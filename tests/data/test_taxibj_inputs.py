"""TaxiBJ's ST-ResNet inputs: period and trend frames a day and a week before the next slot
(found by time, missing ones dropping the window), and DeepST's external factors."""

from __future__ import annotations

import datetime as dt

import h5py
import numpy as np
import pytest
import torch

import mimcast
from mimcast.data import TaxiBJ
from mimcast.errors import DataError

from .writers import taxibj_dates, taxibj_value, write_bj_externals, write_taxibj

START = dt.date(2014, 3, 1)  # a Saturday
DAYS = [START + dt.timedelta(days=k) for k in range(12) if k != 8]  # 03-09 missing
HOLIDAY = START + dt.timedelta(days=9)


def slot_date(key: int) -> bytes:
    day, slot = divmod(int(key), 48)
    return f"{dt.date.fromordinal(day):%Y%m%d}{slot + 1:02d}".encode()


@pytest.fixture()
def bj(tmp_path):
    # 03-01..03-04 in one file, 03-05..03-12 in another; 03-09 missing, 03-03 incomplete.
    write_taxibj(tmp_path / "BJ14_M32x32_T30_InOut.h5", taxibj_dates(DAYS[:4], {DAYS[2]: 30}), 4)
    write_taxibj(tmp_path / "BJ15_M32x32_T30_InOut.h5", taxibj_dates(DAYS[4:]), hw=4)
    dates = [d for d in taxibj_dates(DAYS) if d != f"{DAYS[9]:%Y%m%d}20".encode()]
    write_bj_externals(tmp_path, dates, [START, HOLIDAY])
    return tmp_path


def test_period_and_trend_frames_are_a_day_and_a_week_before_the_next_slot(bj) -> None:
    ds = TaxiBJ(bj, "train", seq_len=4, context_len=2, test_days=1, period_days=2, trend_weeks=1)
    assert ds.frame_shape == (8, 4, 4) and ds.given_inputs == (("period", 4), ("trend", 2))
    complete = {d.toordinal() for d in DAYS if d != DAYS[2]}
    kept = {int(ds.time_index(i)[0]) for i in range(len(ds))}
    expect = set()
    train = complete - {DAYS[-1].toordinal()}
    for start in range(min(train) * 48, (max(train) + 1) * 48):
        slots = [start + j for j in range(4)]
        refs = [k + 1 - lag for k in slots for lag in (48, 96, 336)]
        if all(k // 48 in train for k in slots) and all(r // 48 in complete for r in refs):
            expect.add(start)
    # only 03-08 has the day before, two days before (03-06) and a week before (03-01), and
    # the last slot of 03-07, whose next slot is on 03-08
    assert kept == expect and len(kept) == 46
    assert {k // 48 for k in kept} == {DAYS[6].toordinal(), DAYS[7].toordinal()}
    for i in (0, len(ds) // 2, len(ds) - 1):
        x = ds.to_units(ds[i]).numpy()
        for t, key in enumerate(ds.time_index(i)):
            lagged = [taxibj_value(slot_date(key + 1 - lag)) for lag in (0, 48, 96, 336)]
            lagged[0] = taxibj_value(slot_date(key))  # the frame's own flows
            np.testing.assert_allclose(x[t, 0::2, 1, 2], lagged, atol=0.05)  # inflows
            np.testing.assert_allclose(x[t, 1::2, 3, 0], np.array(lagged) / 2, atol=0.05)
    plain = TaxiBJ(bj, "train", seq_len=4, context_len=2, test_days=1)
    assert plain.frame_shape == (2, 4, 4) and plain.given_inputs == () and len(plain) > len(ds)


def test_external_factors_are_deepsts(bj) -> None:
    ds = TaxiBJ(bj, "test", seq_len=4, context_len=2, test_days=3, externals=True)
    assert ds.given_inputs == (("externals", 28),) and ds.frame_shape == (30, 4, 4)
    with h5py.File(bj / "BJ_Meteorology.h5", "r") as f:
        dates = list(f["date"][()])
        wind, temp = f["WindSpeed"][()], f["Temperature"][()]
    train = [k for k, d in enumerate(dates) if d[:8] < f"{DAYS[-3]:%Y%m%d}".encode()]
    scaled = [(v - v[train].min()) / (v[train].max() - v[train].min()) for v in (wind, temp)]
    starts = {int(ds.time_index(i)[0]) for i in range(len(ds))}
    missing = DAYS[9].toordinal() * 48 + 19  # no weather record in slot 20 of 03-11: the
    assert not any(k <= missing < k + 4 for k in starts)  # frame of that slot has no factors
    assert {missing - 4, missing + 1} <= starts
    seen_holiday = False
    for i in range(0, len(ds), 5):
        e = ds[i].numpy()[:, 2:]
        assert (e == e[:, :, :1, :1]).all()  # constant maps
        for t, key in enumerate(ds.time_index(i)):
            day = dt.date.fromordinal(int(key + 1) // 48)
            want = np.zeros(28)
            want[day.weekday()], want[7], want[8] = 1, day.weekday() < 5, day == HOLIDAY
            row = dates.index(slot_date(key))  # the weather recorded in the slot before
            want[9 + row % 17], want[26], want[27] = 1, scaled[0][row], scaled[1][row]
            np.testing.assert_allclose(e[t, :, 0, 0], want, atol=1e-6)
            seen_holiday |= day == HOLIDAY
    assert seen_holiday


def test_the_model_reads_what_the_data_gives(bj) -> None:
    ds = TaxiBJ(bj, "train", seq_len=4, context_len=2, test_days=1, period_days=2,
                trend_weeks=1, externals=True)  # fmt: skip
    model = mimcast.create_model(
        "stresnet", in_channels=ds.frame_shape[0], height=4, width=4, hidden=(4,),
        filter_size=3, stresnet_period=2, stresnet_trend=1, stresnet_externals=28,
    )  # fmt: skip
    assert model.stack.given_inputs == ds.given_inputs
    frames = torch.stack([ds[0], ds[len(ds) - 1]])
    preds = model(frames, context_len=2)
    assert preds.shape == (2, 3, 36, 4, 4)
    torch.testing.assert_close(preds[:, :, 2:], frames[:, 1:, 2:], rtol=0, atol=0)


def test_bad_input(bj, tmp_path) -> None:
    opts = dict(seq_len=4, context_len=2, test_days=1)
    with pytest.raises(DataError, match="no window of 4 consecutive time slots with their"):
        TaxiBJ(bj, period_days=0, trend_weeks=2, **opts)
    with pytest.raises(DataError, match="period_days and trend_weeks >= 0"):
        TaxiBJ(bj, period_days=-1, **opts)
    (bj / "BJ_Holiday.txt").write_text("20140301\n2014-03-02\n")
    with pytest.raises(DataError, match=r"BJ_Holiday.txt: line 2 is b'2014-03-02', expected"):
        TaxiBJ(bj, externals=True, **opts)
    (bj / "BJ_Holiday.txt").unlink()
    with pytest.raises(DataError, match="no BJ_Holiday.txt; the external factors need it"):
        TaxiBJ(bj, externals=True, **opts)
    (bj / "BJ_Holiday.txt").write_text("")
    with h5py.File(bj / "BJ_Meteorology.h5", "r+") as f:
        del f["WindSpeed"]
    with pytest.raises(DataError, match="BJ_Meteorology.h5: no key 'WindSpeed'"):
        TaxiBJ(bj, externals=True, **opts)
    np.savez(tmp_path / "dataset.npz", X_train=np.zeros((1, 2, 2, 4, 4)))
    with pytest.raises(DataError, match="need the original .h5 files"):
        TaxiBJ(tmp_path / "dataset.npz", period_days=1, seq_len=4, context_len=2)
