"""The model configuration: everything needed to rebuild a model from a checkpoint alone.

This is the one definition of every model setting: the run config's `model:` section is a
ModelConfig without the frame shape (which comes from the data), and create_model, the
checkpoints, the bench and the CLI all build this class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from mimcast.errors import ConfigError
from mimcast.settings import build_section, setting, to_plain, validate

VARIANTS = ("paper", "openstl")  # what each one changes: models/variants.py
PAD_MODES = ("replicate", "reflect", "zeros")
FRAME_FIELDS = ("in_channels", "height", "width")
TRAJGRU_LINKS = (13,)  # Shi et al. 2017, Moving MNIST: L = 13 at every level
TRAJGRU_GRIDS = ("centres", "torch_port")  # how the warp maps pixels to grid_sample (trajgru.py)
CDNA_COMPOSITES = ("paper", "official")  # what CDNA's masks composite (cdna.py)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a forecaster. Saved as JSON next to every checkpoint.

    Frames are (C, H, W) = (in_channels, height, width); inside the model they are folded into
    patches of `patch_size` x `patch_size`, giving (p*p*C, H/p, W/p) feature maps. The frame
    fields may be left None in a run config (the data set fills them in); a model is built
    only from a config that has them.
    """

    SECTION: ClassVar[str] = "model"

    name: str = setting("mim", doc="a registered model (mimcast.list_models())")
    in_channels: int | None = setting(None, low=1)
    height: int | None = setting(None, low=1)
    width: int | None = setting(None, low=1)
    patch_size: int = setting(1, low=1, high=64)
    hidden: tuple[int, ...] = setting((64, 64, 64, 64), low=1, high=4096)
    filter_size: int = setting(5, low=1, high=31)
    layer_norm: bool = setting(False)
    variant: str = setting("paper", choices=VARIANTS, doc="the equations or OpenSTL's code")
    mim_n: bool = setting(True, doc="MIM only: keep the non-stationary unit (Table 2 ablation)")
    mim_s: bool = setting(True, doc="MIM only: keep the stationary unit (Table 2 ablation)")
    trajgru_links: tuple[int, ...] = setting(
        TRAJGRU_LINKS,
        low=1,
        high=64,
        doc="trajgru only: L, the flow fields (links) each TrajGRU layer warps its state along; "
        "one number for every level or one per level of model.hidden (the paper: 13)",
    )
    trajgru_grid: str = setting(
        "centres",
        choices=TRAJGRU_GRIDS,
        doc="trajgru only: the warp's sampling grid: 'centres' samples at pixel centres, as the "
        "official MXNet code and the paper; 'torch_port' as the PyTorch ports (Hzzone/"
        "Precipitation-Nowcasting), a grid normalised for align_corners=True sampled with "
        "align_corners=False (half a pixel off, slightly zoomed), to load their weights",
    )
    dfn_filter_size: int = setting(
        9,
        low=1,
        high=31,
        doc="dfn only: size of the per-pixel filters it generates (odd; 9 in the paper)",
    )
    cdna_kernels: int = setting(
        10, low=1, high=64,
        doc="cdna only: number K of normalised kernels applied to the previous frame (10 in the "
        "paper), composited with it by K + 1 masks",
    )  # fmt: skip
    cdna_composite: str = setting(
        "paper", choices=CDNA_COMPOSITES,
        doc="cdna only: 'paper' composites the frame and its K transformed copies with K + 1 "
        "masks, a softmax of a 1x1 convolution; 'official' as the official code and its PyTorch "
        "port, to load their weights: a ReLU before the softmax, an image generated from scratch "
        "(a sigmoid of a 1x1 convolution) under mask 1, and the last kernel's copy dropped (K + 1 "
        "masks for K + 2 images)",
    )  # fmt: skip
    vpn_encoder_blocks: int = setting(
        8, low=1, high=64,
        doc="vpn only: residual multiplicative blocks of the encoder, dilated 1, 2, 4, 8 in "
        "turn (8 in the paper)",
    )  # fmt: skip
    vpn_decoder_blocks: int = setting(
        12, low=1, high=64,
        doc="vpn only: residual multiplicative blocks of the decoder (12 in the paper)",
    )  # fmt: skip
    stresnet_closeness: int = setting(
        3, low=1, high=64,
        doc="stresnet only: len_c, frames of the closeness branch (the frame just read and the "
        "ones before it; 3 in the paper's TaxiBJ runs)",
    )  # fmt: skip
    stresnet_period: int = setting(
        0, low=0, high=64,
        doc="stresnet only: len_p, frames of the period branch (the predicted slot 1..len_p days "
        "back), which the data gives as channels of each frame (taxibj: period_days)",
    )  # fmt: skip
    stresnet_trend: int = setting(
        0, low=0, high=64,
        doc="stresnet only: len_q, frames of the trend branch (the predicted slot 1..len_q weeks "
        "back), given as channels of each frame (taxibj: trend_weeks)",
    )  # fmt: skip
    stresnet_externals: int = setting(
        0, low=0, high=4096,
        doc="stresnet only: external factors of the predicted slot, given as the last channels "
        "of each frame and read by the external branch (taxibj with externals: 28)",
    )  # fmt: skip
    residual: bool = setting(
        False,
        doc="predict the change from the frame last read, x_{t+1} = x_t + head(h), with the "
        "head initialised to 0 so that the untrained model repeats the last frame",
    )
    pad_mode: str = setting(
        "replicate", choices=PAD_MODES, doc="padding of frames whose size is no multiple of patch"
    )

    def __post_init__(self) -> None:
        for key in ("hidden", "trajgru_links"):  # hidden=64: one layer of 64
            value = getattr(self, key)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, key, (value,))
        validate(self, self.SECTION)
        if not self.hidden:
            raise ConfigError("model.hidden must be a non-empty list of channel counts")
        for name in ("filter_size", "dfn_filter_size"):
            if getattr(self, name) % 2 == 0:
                raise ConfigError(
                    f"model.{name} must be odd (same padding), got {getattr(self, name)}"
                )

    @property
    def has_frames(self) -> bool:
        return all(getattr(self, k) is not None for k in FRAME_FIELDS)

    def with_frames(self, frame_shape: tuple[int, int, int]) -> ModelConfig:
        """This architecture for frames of shape (C, H, W)."""
        c, h, w = (int(v) for v in frame_shape)
        return dataclasses.replace(self, in_channels=c, height=h, width=w)

    @property
    def frame_channels(self) -> int:
        """Channels of a frame once folded into patches: p * p * C."""
        return self.patch_size**2 * self.in_channels

    @property
    def grid(self) -> tuple[int, int]:
        """Spatial size of the recurrent states: (H / p, W / p), rounded up. A frame whose
        size is no multiple of p is padded inside the model (pad_mode) to (p*h, p*w) and the
        predictions are cropped back: the outputs always have the frames' own size."""
        p = self.patch_size
        return -(-self.height // p), -(-self.width // p)

    def to_dict(self, frames: bool = True) -> dict[str, Any]:
        d = to_plain(self)
        return d if frames else {k: v for k, v in d.items() if k not in FRAME_FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return build_section(cls, d, cls.SECTION)
