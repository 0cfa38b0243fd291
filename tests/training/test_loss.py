"""train.loss: the frame loss the trainer minimises."""

from __future__ import annotations

import pytest
import torch

from mimcast.errors import ConfigError
from mimcast.training.config import TrainSection
from mimcast.training.trainer import frame_loss


def test_mse_and_mse_plus_l1() -> None:
    err = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    assert frame_loss(err, "mse").item() == pytest.approx((0.25 + 1 + 4) / 4)
    assert frame_loss(err, "mse+l1").item() == pytest.approx((0.25 + 1 + 4) / 4 + 3.5 / 4)


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(ConfigError, match="train.loss"):
        TrainSection(loss="huber")
