"""The trivial forecasts (persistence, optical flow), their registry and the skill against them."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from mimcast.errors import ConfigError, DataError
from mimcast.evaluation import baselines as bl
from mimcast.evaluation.metrics import FrameMetrics, psnr_frames, ssim_frames, ssim_legacy_frames
from mimcast.evaluation.skill import BaselineMetrics, add_baselines, format_skill_table

SIZE = 48


def texture(size: int, seed: int = 0) -> torch.Tensor:
    """A smooth random texture in [0, 1], (size, size): something optical flow can track."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, size, size, generator=g, dtype=torch.float64)
    for _ in range(3):  # a box blur three times: blobs a few pixels wide
        x = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    x = (x - x.min()) / (x.max() - x.min())
    return x[0, 0]


def translated(dx: int, dy: int, frames: int, channels: int = 1) -> torch.Tensor:
    """(1, frames, channels, SIZE, SIZE): a texture whose content moves by (dx, dy) pixels per
    frame (cut from a larger one, so exactly, with no resampling); channel c is the texture
    scaled by its own factor."""
    margin = max(abs(dx), abs(dy)) * frames
    big = texture(SIZE + 2 * margin)
    out = []
    for t in range(frames):
        top, left = margin - dy * t, margin - dx * t
        out.append(big[top : top + SIZE, left : left + SIZE])
    x = torch.stack(out)[None, :, None]  # (1, T, 1, H, W)
    return torch.cat([x * (0.5 + 0.5 * c / max(channels, 1)) for c in range(channels)], dim=2)


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean())


# ---------------------------------------------------------------- the forecasts


def test_persistence_is_the_last_frame_exactly() -> None:
    ctx = torch.rand(3, 5, 2, 8, 9, dtype=torch.float64)
    f = bl.persistence(ctx, 4)
    assert f.frames.shape == (3, 4, 2, 8, 9)
    for k in range(4):
        assert torch.equal(f.frames[:, k], ctx[:, -1])
    assert not f.no_motion.any()
    arr = bl.persistence(ctx.numpy(), 2).frames  # numpy in, numpy out
    assert isinstance(arr, np.ndarray) and np.array_equal(arr[:, 1], ctx[:, -1].numpy())


@pytest.mark.parametrize("channels", [1, 3])
def test_flow_follows_a_translated_pattern(channels: int) -> None:
    # the content moves 2 px right and 1 px down per frame; 4 lead times
    x = translated(2, 1, frames=10, channels=channels)
    ctx, true = x[:, :6], x[:, 6:]
    f = bl.flow(ctx, 4)
    pers = bl.persistence(ctx, 4).frames
    assert f.frames.shape == true.shape and f.frames.dtype == ctx.dtype
    ratio = mse(f.frames, true) / mse(pers, true)
    assert ratio < 0.1, ratio  # far better than repeating the last frame
    assert not f.no_motion.any()
    u = bl.motion_field(ctx, (0.0, 1.0))[0, :, 8:-8, 8:-8]  # where a pixel was a frame ago
    assert float(u[0].median()) == pytest.approx(-2.0, abs=0.1)
    assert float(u[1].median()) == pytest.approx(-1.0, abs=0.1)
    for c in range(channels):  # every channel is moved
        assert mse(f.frames[:, :, c], true[:, :, c]) < 0.1 * mse(pers[:, :, c], true[:, :, c])


def test_flow_says_when_it_finds_no_motion() -> None:
    still = translated(0, 0, frames=4)  # a textured frame that does not move
    blank = torch.zeros(1, 4, 1, SIZE, SIZE, dtype=torch.float64)
    moving = translated(2, 0, frames=4)
    ctx = torch.cat([still, blank, moving])
    f = bl.flow(ctx, 3)
    assert f.no_motion.tolist() == [True, True, False]
    pers = bl.persistence(ctx, 3).frames
    assert torch.equal(f.frames[:2], pers[:2])  # there it is persistence, exactly
    assert not torch.equal(f.frames[2], pers[2])


def test_flow_works_on_numpy_and_in_other_units() -> None:
    x = translated(1, 1, frames=7).numpy() * 200 - 100  # values in [-100, 100]
    f = bl.flow(x[:, :4], 3, value_range=(-100.0, 100.0))
    assert isinstance(f.frames, np.ndarray)
    pers = bl.persistence(x[:, :4], 3).frames
    assert ((f.frames - x[:, 4:]) ** 2).mean() < 0.1 * ((pers - x[:, 4:]) ** 2).mean()


def test_flow_needs_two_context_frames() -> None:
    with pytest.raises(DataError, match="at least 2 context frames"):
        bl.flow(torch.zeros(1, 1, 1, 8, 8), 2)


# ---------------------------------------------------------------- the registry


def test_baselines_are_chosen_by_name() -> None:
    assert bl.select_baselines("none") == ([], {})
    assert [b.name for b in bl.select_baselines("persistence")[0]] == ["persistence"]
    assert [b.name for b in bl.select_baselines("all")[0]] == ["persistence", "flow"]
    with pytest.raises(ConfigError, match="--baselines must be one of none, persistence, flow"):
        bl.select_baselines("bogus", "--baselines")
    with pytest.raises(ConfigError, match="--method must be one of persistence, flow, got 'x'"):
        bl.baseline_named("x")


def test_all_leaves_out_a_baseline_whose_library_is_missing(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if n == "cv2" else real(n))
    chosen, left_out = bl.select_baselines("all")
    assert [b.name for b in chosen] == ["persistence"]
    assert "OpenCV is not installed" in left_out["flow"]
    with pytest.raises(ConfigError, match="--baselines flow: OpenCV is not installed"):
        bl.select_baselines("flow", "--baselines")


# ---------------------------------------------------------------- skill


def scored(model_forecast, choice: str = "all", batches: int = 2) -> dict:
    """The model's FrameMetrics result with the baselines' added, over a few batches."""
    x = torch.cat([translated(2, 1, frames=8), translated(-1, 2, frames=8)]).float()
    chosen, left_out = bl.select_baselines(choice)
    model = FrameMetrics(n_frames=4)
    trivial = BaselineMetrics(chosen, lambda: FrameMetrics(n_frames=4), (0.0, 1.0))
    for _ in range(batches):
        model.update(model_forecast(x[:, :4], x[:, 4:]), x[:, 4:])
        trivial.update(x[:, :4], x[:, 4:])
    return add_baselines(model.compute(), trivial.compute(), left_out)


def test_skill_is_zero_for_a_model_that_outputs_persistence() -> None:
    result = scored(lambda ctx, true: bl.persistence(ctx, true.shape[1]).frames)
    assert result["baselines"]["persistence"]["skill"] == [0.0] * 4
    assert result["baselines"]["persistence"]["skill_mean"] == 0.0
    assert result["baselines"]["flow"]["skill_mean"] < -1  # flow is far better here
    assert result["verdict"] == (
        "the model is WORSE than optical flow (skill "
        f"{result['baselines']['flow']['skill_mean']:.3g}) but ties with persistence (skill 0) "
        "over the horizon"
    )


def test_a_perfect_model_beats_both() -> None:
    result = scored(lambda ctx, true: true)
    for b in result["baselines"].values():
        assert b["skill"] == [1.0] * 4
    assert result["verdict"] == (
        "the model beats persistence (skill 1) and optical flow (skill 1) over the horizon"
    )
    table = format_skill_table(result)
    assert table.splitlines()[-1] == result["verdict"] and "skill vs optical flow" in table


def test_skill_per_lead_time_is_one_minus_the_mse_ratio() -> None:
    half = lambda ctx, true: 0.5 * (true + bl.persistence(ctx, true.shape[1]).frames)  # noqa: E731
    result = scored(half, "persistence", batches=1)
    p = result["baselines"]["persistence"]
    for m, b, s in zip(result["per_frame"]["mse"], p["per_frame"]["mse"], p["skill"], strict=True):
        assert s == pytest.approx(1 - m / b) and s == pytest.approx(0.75)  # error halved
    assert list(result["baselines"]) == ["persistence"] and result["baselines_left_out"] == {}


def test_no_motion_is_counted_and_noted() -> None:
    still = lambda: torch.cat([translated(0, 0, frames=6)] * 3).float()  # noqa: E731
    x = still()
    chosen, _ = bl.select_baselines("flow")
    trivial = BaselineMetrics(chosen, lambda: FrameMetrics(n_frames=2), (0.0, 1.0))
    trivial.update(x[:, :4], x[:, 4:])
    model = FrameMetrics(n_frames=2)
    model.update(x[:, 4:] + 0.01, x[:, 4:])
    result = add_baselines(model.compute(), trivial.compute(), {})
    flow = result["baselines"]["flow"]
    assert flow["no_motion_sequences"] == 3
    assert flow["note"] == (
        "optical flow found no motion in any of the 3 sequences: its scores are persistence's"
    )
    assert flow["note"] in format_skill_table(result)
    # an exact baseline (static frames: MSE 0) cannot give a skill
    assert flow["skill_mean"] != flow["skill_mean"]  # NaN
    assert "cannot be compared with optical flow" in result["verdict"]


def test_sharded_sums_add_up_to_the_whole() -> None:
    x = torch.cat([translated(2, 1, frames=8), translated(0, 0, frames=8)]).float()
    chosen, _ = bl.select_baselines("all")

    def part(rows: slice) -> BaselineMetrics:
        m = BaselineMetrics(chosen, lambda: FrameMetrics(n_frames=4), (0.0, 1.0))
        m.update(x[rows, :4], x[rows, 4:])
        return m

    whole, a, b = part(slice(0, 2)), part(slice(0, 1)), part(slice(1, 2))
    sums_a, sums_b = [], []
    a.reduce(sums_a.append)  # what an all-reduce sees, in its order
    b.reduce(sums_b.append)
    for ta, tb in zip(sums_a, sums_b, strict=True):
        ta += tb
    got, want = a.compute(), whole.compute()
    assert got["flow"]["no_motion_sequences"] == want["flow"]["no_motion_sequences"] == 1
    for name in want:
        assert got[name]["per_frame"]["mse"] == pytest.approx(want[name]["per_frame"]["mse"])
        assert got[name]["n_sequences"] == 2


def to_grey_levels(x: torch.Tensor) -> torch.Tensor:
    return 255 * x


def test_baselines_on_the_models_truth_score_as_plain_frame_metrics() -> None:
    """The baselines scored against the Truth the model's metrics prepared (shared window
    statistics, persistence's computed once per sequence) equal a plain FrameMetrics of each
    forecast, and the metric functions themselves, to 1e-12."""
    x = torch.cat(
        [translated(2, 1, frames=8), translated(-1, 2, frames=8), 0.5 * translated(0, 0, frames=8)]
    )
    x = x.float()
    context, true = x[:, :4], x[:, 4:]
    chosen, _ = bl.select_baselines("all")
    kw = dict(to_units=to_grey_levels, thresholds=(0.3, 0.6), n_frames=4)
    truth = FrameMetrics(**kw).prepare(true)  # as the evaluation's model metrics do
    trivial = BaselineMetrics(chosen, lambda: FrameMetrics(**kw), (0.0, 1.0))
    trivial.update(context, truth)
    got = trivial.compute()
    assert [b.name for b in chosen] == ["persistence", "flow"]
    for b in chosen:
        frames = b.forecast(context, 4, (0.0, 1.0)).frames
        plain = FrameMetrics(**kw)
        plain.update(frames, true)
        want = plain.compute()
        assert got[b.name]["per_frame"].keys() == want["per_frame"].keys()
        for k, v in want["per_frame"].items():
            np.testing.assert_allclose(got[b.name]["per_frame"][k], v, rtol=0, atol=1e-12)
        p = frames.clamp(0, 1)
        by_function = {"ssim": ssim_frames(p, true), "ssim_legacy": ssim_legacy_frames(p, true),
                       "psnr": psnr_frames(p, true)}  # fmt: skip
        for k, v in by_function.items():
            np.testing.assert_allclose(got[b.name]["per_frame"][k], v.mean(0), rtol=0, atol=1e-12)
    assert got["persistence"]["per_frame"]["ssim"][0] < 0.99  # a real comparison, not 1 = 1
