"""What a model was trained on: frame shape, value range and the units map of its data.

Saved with every run (data.json) and every exported model, so that predictions can be made
from a context in the data's own units without the data set at hand:
data units = model units * scale + offset, per channel or for all channels at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mimcast.errors import DataError

from .base import Affine, SequenceDataset


@dataclass(frozen=True)
class DataSpec:
    frame_shape: tuple[int, int, int]  # (C, H, W)
    value_range: tuple[float, float]  # of model units
    units: str  # the data's own units
    scale: tuple[float, ...]  # one value, or one per channel
    offset: tuple[float, ...]
    context_len: int
    name: str = ""  # the data set it came from

    @classmethod
    def from_dataset(cls, ds: SequenceDataset) -> DataSpec:
        norm = ds.normalizer
        return cls(
            frame_shape=tuple(int(v) for v in ds.frame_shape),
            value_range=tuple(float(v) for v in ds.value_range),
            units=str(ds.units),
            scale=tuple(float(v) for v in np.ravel(norm.scale)),
            offset=tuple(float(v) for v in np.ravel(norm.offset)),
            context_len=int(ds.context_len),
            name=str(ds.name),
        )

    def _params(self) -> tuple[np.ndarray, np.ndarray]:
        """scale and offset shaped to broadcast over (C, H, W): (C, 1, 1) or scalars."""

        def shaped(v: tuple[float, ...]) -> np.ndarray:
            a = np.asarray(v, np.float64)
            return a.reshape(-1, 1, 1) if len(a) > 1 else a.reshape(())

        return shaped(self.scale), shaped(self.offset)

    def affine(self) -> Affine:
        """The units map as a data set's normalizer."""
        return Affine(*self._params())

    def to_data_units(self, x: np.ndarray) -> np.ndarray:
        """Model units -> data units, over trailing (C, H, W) axes."""
        scale, offset = self._params()
        return np.asarray(x, np.float64) * scale + offset

    def to_model_units(self, x: np.ndarray) -> np.ndarray:
        scale, offset = self._params()
        return (np.asarray(x, np.float64) - offset) / scale

    def data_range(self) -> tuple[float, float]:
        """The value range in data units (over all channels)."""
        lo, hi = self.value_range
        ends = self.to_data_units(np.array([lo, hi]))
        return float(np.min(ends)), float(np.max(ends))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "frame_shape": list(self.frame_shape),
            "value_range": list(self.value_range),
            "units": self.units,
            "units_scale": list(self.scale),  # data units = model units * scale + offset
            "units_offset": list(self.offset),
            "context_len": self.context_len,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> DataSpec:
        try:
            scale, offset = d["units_scale"], d["units_offset"]
            spec = cls(
                frame_shape=tuple(int(v) for v in d["frame_shape"]),
                value_range=tuple(float(v) for v in d["value_range"]),
                units=str(d.get("units", "")),
                scale=tuple(float(v) for v in np.ravel(scale)),
                offset=tuple(float(v) for v in np.ravel(offset)),
                context_len=int(d.get("context_len", 1)),
                name=str(d.get("name", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{where} is damaged: {e!r}") from e
        problem = spec._problem()
        if problem:
            raise DataError(f"{where} is damaged: {problem}")
        return spec

    def _problem(self) -> str:
        """What is wrong with values read from a file ("" when nothing): each would otherwise
        surface later as a traceback or a silently wrong forecast."""
        if len(self.frame_shape) != 3 or min(self.frame_shape) < 1:
            return f"frame_shape {list(self.frame_shape)} is not three positive sizes (C, H, W)"
        lo_hi = self.value_range
        if len(lo_hi) != 2 or not np.all(np.isfinite(lo_hi)) or not lo_hi[0] < lo_hi[1]:
            return f"value_range {list(lo_hi)} is not two finite values, low < high"
        n = {len(self.scale), len(self.offset)}
        if len(n) != 1 or not n <= {1, self.frame_shape[0]}:
            return (
                "units_scale and units_offset need one value, or one per channel "
                f"({self.frame_shape[0]}), not {len(self.scale)} and {len(self.offset)}"
            )
        if any(s == 0 for s in self.scale) or not np.all(np.isfinite(self.scale + self.offset)):
            return "the units scale must be finite and non-zero"
        if self.context_len < 1:
            return f"context_len {self.context_len} is below 1"
        return ""
