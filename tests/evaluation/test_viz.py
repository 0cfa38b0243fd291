"""Tests for mimcast.viz: every function writes a valid PNG or GIF."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mimcast.errors import ConfigError
from mimcast.evaluation.viz import (
    plot_framewise,
    save_comparison_gif,
    save_diff_maps,
    save_gif,
    save_strip,
)


def _seq(t: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((t, c, 16, 16))  # (T, C, H, W)


def _png(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.size


def test_plot_framewise(tmp_path):
    curves = {"run_a": {"mse": [50.0, 60.0, 70.0]}, "run_b": {"mse": [40.0, 55.0, None]}}
    p = plot_framewise(curves, "mse", tmp_path / "new" / "mse.png")
    w, h = _png(p)
    assert w > 100 and h > 100
    with pytest.raises(ConfigError):
        plot_framewise(curves, "ssim", tmp_path / "x.png")


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_save_strip(tmp_path, channels):
    ctx, true = _seq(4, channels, 1), torch.from_numpy(_seq(5, channels, 2))
    pred = true.clone().float()
    p = save_strip(ctx, true, pred, tmp_path / f"strip{channels}.png", every=2, max_frames=2)
    w, h = _png(p)
    assert w > h > 50
    p = save_strip(None, true, pred, tmp_path / "nocontext.png", channel=0)
    _png(p)


def test_save_diff_maps(tmp_path):
    true, pred = _seq(3, 2, 1), _seq(3, 2, 2)
    w, h = _png(save_diff_maps(true, pred, tmp_path / "diff.png", channel_names=["in", "out"]))
    w1, h1 = _png(save_diff_maps(true, true, tmp_path / "zero.png", channel=1))
    assert h > h1  # two rows vs one


def test_save_gif(tmp_path):
    frames = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 1, 8, 12)  # distinct frames
    p = save_gif(frames, tmp_path / "a.gif", fps=5, scale=2)
    with Image.open(p) as im:
        assert im.format == "GIF" and im.size == (24, 16) and im.n_frames == 5
    rgb = save_gif(_seq(3, 3), tmp_path / "rgb.gif", vrange=(0, 1))
    with Image.open(rgb) as im:
        assert im.n_frames == 3


def test_save_comparison_gif(tmp_path):
    true, pred = _seq(4, 2, 1), _seq(4, 2, 2)
    p = save_comparison_gif(true, pred, tmp_path / "cmp.gif", gap=2, scale=3)
    with Image.open(p) as im:
        assert im.size == ((16 * 2 + 2) * 3, 16 * 3) and im.n_frames == 4
