"""Validation during training: the mean per-frame MSE of free-running forecasts.

The number that picks the `best` checkpoint. Every sequence is counted once; under torchrun
each rank takes a shard and the sums are reduced, so the result equals a single-process run.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from mimcast.models.rollout import Forecaster
from mimcast.training import distributed as dist_utils
from mimcast.training.precision import autocast


def shard(n: int) -> list[int]:
    """This rank's indices of the first n items (round robin; every item exactly once)."""
    return list(range(dist_utils.rank(), n, dist_utils.world_size()))


def frame_mse(
    model: Forecaster,
    data: Dataset,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    limit: int = 0,
) -> float:
    """Mean per-frame MSE (summed over a frame's pixels, as the papers report), free-running,
    over the first `limit` sequences (0: all), predictions clipped to the data's range."""
    n = len(data) if limit <= 0 else min(limit, len(data))
    loader = DataLoader(Subset(data, shard(n)), batch_size=batch_size)
    lo, hi = data.value_range
    context_len = int(data.context_len)
    k = model.forecast_channels  # not the given inputs (data)
    total = torch.zeros(2, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        for frames in loader:
            frames = frames.to(device)
            with autocast(device, precision):
                preds = model(frames, context_len)
            preds = Forecaster.forecast_part(preds, context_len).float().clamp(lo, hi)
            err = preds - frames[:, context_len:].float()
            per_frame = (err[:, :, :k] ** 2).sum(dim=(2, 3, 4))
            total += torch.tensor([per_frame.sum().item(), per_frame.numel()], dtype=torch.float64)
    dist_utils.all_reduce_sum(total)
    return (total[0] / total[1]).item() if total[1] > 0 else math.nan
