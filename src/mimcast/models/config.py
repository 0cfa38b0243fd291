"""The model configuration: everything needed to rebuild a model from a checkpoint alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from mimcast.errors import ConfigError

VARIANTS = ("paper", "openstl")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a forecaster. Saved as JSON next to every checkpoint.

    Frames are (C, H, W) = (in_channels, height, width); inside the model they are folded into
    patches of `patch_size` x `patch_size`, giving (p*p*C, H/p, W/p) feature maps.
    """

    name: str
    in_channels: int
    height: int
    width: int
    patch_size: int = 1
    hidden: tuple[int, ...] = (64, 64, 64, 64)
    filter_size: int = 5
    layer_norm: bool = False
    variant: str = "paper"  # "paper": the equations; "openstl": the reference code's semantics
    mim_n: bool = True  # MIM only: keep the non-stationary unit (Table 2 ablation when False)
    mim_s: bool = True  # MIM only: keep the stationary unit (Table 2 ablation when False)

    def __post_init__(self) -> None:
        hidden = self.hidden
        if isinstance(hidden, int) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if not isinstance(hidden, (tuple, list)) or not hidden:
            raise ConfigError(
                f"model.hidden must be a non-empty list of channel counts, got {hidden!r}"
            )
        object.__setattr__(self, "hidden", tuple(hidden))
        for key in ("in_channels", "height", "width", "patch_size", "filter_size"):
            _positive_int(key, getattr(self, key))
        for i, h in enumerate(self.hidden):
            _positive_int(f"hidden[{i}]", h)
        for key in ("layer_norm", "mim_n", "mim_s"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"model.{key} must be true or false, got {getattr(self, key)!r}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"model.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.filter_size % 2 == 0:
            raise ConfigError(
                f"model.filter_size must be odd (same padding), got {self.filter_size}"
            )
        for key in ("height", "width"):
            if getattr(self, key) % self.patch_size:
                raise ConfigError(
                    f"frame {key} {getattr(self, key)} is not divisible by patch_size "
                    f"{self.patch_size}"
                )

    @property
    def frame_channels(self) -> int:
        """Channels of a frame once folded into patches: p * p * C."""
        return self.patch_size**2 * self.in_channels

    @property
    def grid(self) -> tuple[int, int]:
        """Spatial size of the recurrent states: (H / p, W / p)."""
        return self.height // self.patch_size, self.width // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model config key(s): {', '.join(unknown)}")
        return cls(**d)


def _positive_int(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"model.{key} must be a positive integer, got {value!r}")
