"""train.loss: the frame loss the trainer minimises."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import mimcast
from mimcast.errors import ConfigError
from mimcast.training.config import TrainSection
from mimcast.training.losses import frame_loss, gradient_difference
from mimcast.training.sampling import SamplingSchedule
from mimcast.training.trainer import Trainer, TrainerOutputs


def test_mse_and_mse_plus_l1() -> None:
    err = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    zero = torch.zeros(2, 2)
    assert frame_loss(err, zero, "mse").item() == pytest.approx((0.25 + 1 + 4) / 4)
    want = (0.25 + 1 + 4) / 4 + 3.5 / 4
    assert frame_loss(err, zero, "mse+l1").item() == pytest.approx(want)


def loop_gradient_difference(pred: np.ndarray, true: np.ndarray) -> float:
    """Mathieu et al.'s loss with alpha = 1, written out pair by pair: the mean over vertical
    neighbour pairs of | |y(i,j) - y(i-1,j)| - |p(i,j) - p(i-1,j)| |, plus the same over
    horizontal pairs."""
    *lead, h, w = pred.shape
    vertical, horizontal = [], []
    for idx in np.ndindex(*lead):
        p, y = pred[idx], true[idx]
        for i, j in np.ndindex(h, w):
            if i > 0:
                vertical.append(abs(abs(y[i, j] - y[i - 1, j]) - abs(p[i, j] - p[i - 1, j])))
            if j > 0:
                horizontal.append(abs(abs(y[i, j] - y[i, j - 1]) - abs(p[i, j] - p[i, j - 1])))
    return float(np.mean(vertical) + np.mean(horizontal))


def test_gradient_difference_equals_the_loop() -> None:
    rng = np.random.default_rng(0)
    pred, true = rng.normal(size=(2, 3, 2, 5, 7)), rng.normal(size=(2, 3, 2, 5, 7))
    got = gradient_difference(torch.from_numpy(pred), torch.from_numpy(true)).item()
    assert got == pytest.approx(loop_gradient_difference(pred, true), rel=1e-12)
    mse = np.mean((pred - true) ** 2)
    both = frame_loss(torch.from_numpy(pred), torch.from_numpy(true), "mse+gdl").item()
    assert both == pytest.approx(mse + got, rel=1e-12)


def test_gradient_difference_sees_edges_not_levels() -> None:
    """A prediction off by a constant has the truth's gradients (loss 0); one whose edges are
    the truth's mirrored (|gradients| equal) too; a blurred one does not."""
    true = torch.zeros(1, 1, 1, 4, 4, dtype=torch.float64)
    true[..., :, 2:] = 1.0  # a vertical edge
    assert gradient_difference(true + 0.25, true).item() == 0  # (0.25: exact in binary)
    assert gradient_difference(1 - true, true).item() == 0
    blurred = true.clone()
    blurred[..., :, 1] = 0.5
    blurred[..., :, 2] = 0.5
    # rows [0, .5, .5, 1] against [0, 0, 1, 1]: |0 - .5| + |1 - 0| + |0 - .5| = 2 over the 3
    # horizontal pairs of a row; no vertical differences
    assert gradient_difference(blurred, true).item() == pytest.approx(2 / 3)
    one_row = torch.rand(2, 1, 1, 1, 5)  # no vertical neighbours: the horizontal term alone
    assert torch.isfinite(gradient_difference(one_row, torch.rand(2, 1, 1, 1, 5)))


@pytest.mark.parametrize("kind", ["mse", "mse+gdl"])
def test_the_trainer_minimises_the_configured_loss(kind: str, tmp_path) -> None:
    """The loss a training step logs (and backpropagates) is train.loss of that step's
    predictions: with mse+gdl the MSE plus the gradient difference."""
    torch.manual_seed(0)
    model = mimcast.create_model("mim", in_channels=1, height=8, width=8, hidden=(4, 4))
    before = copy.deepcopy(model)
    cfg = TrainSection(
        loss=kind, device="cpu", channels_last=False, sampling=SamplingSchedule(kind="none")
    )
    outputs = TrainerOutputs(tmp_path / "ckpt", tmp_path / "log.csv")
    trainer = Trainer(model, train_set=[], cfg=cfg, outputs=outputs, context_len=2)
    frames = torch.rand(2, 5, 1, 8, 8)
    logged = trainer.train_step(frames)["loss"]
    with torch.no_grad():
        preds = before(frames, 2)
    mse = torch.mean((preds - frames[:, 1:]) ** 2).item()
    gdl = gradient_difference(preds, frames[:, 1:]).item()
    assert gdl > 1e-3
    assert logged == pytest.approx(mse + gdl if kind == "mse+gdl" else mse, rel=1e-5)


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(ConfigError, match="train.loss"):
        TrainSection(loss="huber")
