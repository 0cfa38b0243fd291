"""A data-only split of any data set into "stationary" and "non-stationary" sequences.

The MIM paper's Tables 5 and 6 split KTH "based on their variations" without saying how (its
draft leaves "(methods)" as a placeholder). mimcast defines the split so that it can be
computed from the frames alone, on any data set:

1. each frame is smoothed with a gaussian (sigma 1.5 pixels, scaled with the frame) and
   subsampled to at most 32 pixels on its longer side, so that the score does not depend on
   the frame size and a shift by one pixel is not aliased;
2. the motion energy of step t is E_t = mean |X_{t+1} - X_t| over pixels and channels;
3. the sequence's non-stationarity score is the coefficient of variation of E over time,
   std_t(E_t) / mean_t(E_t): near 0 when things move at a steady pace (stationary motion),
   large when the amount of motion changes over the sequence (accelerations, sudden starts
   and stops, objects appearing). A sequence without motion scores 0.
4. the threshold is a quantile (the median by default) of the scores of the *training* split;
   "stationary" keeps the sequences at or below it, "non-stationary" those above, in every
   split, so train, validation and test follow one rule.

Dataset option: `stationarity: stationary | non-stationary` (and `stationarity_quantile`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mimcast.errors import DataError

from .base import SequenceDataset

KINDS = ("stationary", "non-stationary")
MAX_SIDE = 32


def _reduce(frames: np.ndarray) -> np.ndarray:
    """(T, C, H, W) -> smoothed and subsampled to at most MAX_SIDE pixels on the longer side."""
    t, c, h, w = frames.shape
    k = max(1, -(-max(h, w) // MAX_SIDE))  # the subsampling step (ceil)
    sigma = 1.5 * k
    r = int(3 * sigma)
    g = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    g = (g / g.sum()).view(1, 1, -1)
    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float64)).reshape(t * c, 1, h, w)
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1))[..., ::k]  # along W, then H
    x = F.conv2d(x, g.view(1, 1, -1, 1))[..., ::k, :]
    return x.reshape(t, c, *x.shape[-2:]).numpy()


def score(frames: np.ndarray) -> float:
    """Non-stationarity score of one sequence (T, C, H, W): the coefficient of variation over
    time of its motion energy (see the module docstring)."""
    x = _reduce(np.asarray(frames, dtype=np.float64))
    energy = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2, 3))  # (T-1,)
    mean = energy.mean()
    return float(energy.std() / mean) if mean > 1e-12 else 0.0


def scores(ds: SequenceDataset) -> np.ndarray:
    """The score of every sequence of a data set, in order."""
    return np.array([score(ds[i].numpy()) for i in range(len(ds))])


class StationaritySubset(Dataset):
    """The sequences of `inner` whose score lies at or below `threshold` ("stationary") or
    above it ("non-stationary"); every other attribute is the inner data set's."""

    def __init__(self, inner: SequenceDataset, kind: str, threshold: float) -> None:
        if kind not in KINDS:
            raise DataError(f"stationarity must be one of {', '.join(KINDS)}, got {kind!r}")
        self.inner, self.kind, self.threshold = inner, kind, float(threshold)
        s = scores(inner)
        keep = s <= threshold if kind == "stationary" else s > threshold
        self.indices = np.flatnonzero(keep)
        side = "at or below" if kind == "stationary" else "above"
        self.split_rule = (
            f"{inner.split_rule}; then its {kind} sequences: score {side} {threshold:.4g}, the "
            "training split's median"
        )
        if not len(self.indices):
            raise DataError(
                f"{inner.name}: no {kind} sequence in the {getattr(inner, 'split', '?')} split "
                f"(threshold {threshold:.4g})"
            )

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.inner[int(self.indices[i])]

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def threshold(train: SequenceDataset, quantile: float) -> float:
    if not 0.0 < quantile < 1.0:
        raise DataError(f"stationarity_quantile must be in (0, 1), got {quantile}")
    return float(np.quantile(scores(train), quantile))
