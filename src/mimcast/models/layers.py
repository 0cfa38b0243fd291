"""Small building blocks shared by the cells: gate convolutions, normalisation, patch folding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# How gate pre-activations are normalised ("the paper's layer norm over 3D tensors"):
#   "none"  - no normalisation;
#   "group" - statistics over (C, H, W) of each sample, one scale and shift per channel: the
#             official TensorFlow MIM's tensor_layer_norm. Independent of the frame size.
#   "chw"   - nn.LayerNorm([C, H, W]): statistics over (C, H, W), one scale and shift per element,
#             as in OpenSTL (needed to load its weights).
NORMS = ("none", "group", "chw")

# probe(name, value): a cell's opt-in hook for reading gate activations (Figure 7).
Probe = Callable[[str, Tensor], None]


def make_norm(kind: str, channels: int, grid: tuple[int, int]) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "group":
        return nn.GroupNorm(1, channels)
    if kind == "chw":
        return nn.LayerNorm([channels, *grid])
    raise ValueError(f"unknown norm {kind!r}, expected one of {NORMS}")


@dataclass(frozen=True)
class ConvSpec:
    """How a model's gate convolutions are made: filter size, state grid (h, w), norm."""

    filter_size: int
    grid: tuple[int, int]
    norm: str = "none"


class GateConv(nn.Module):
    """One convolution giving the pre-activations of several gates from one input, then a norm.

    Merging all gates that read the same tensor into one convolution is both what the
    reference code does (so its weights load unchanged) and what makes the step cheap.
    """

    def __init__(
        self, in_channels: int, out_channels: int, spec: ConvSpec, *, bias: bool = False
    ) -> None:
        super().__init__()
        k = spec.filter_size
        self.conv = nn.Conv2d(in_channels, out_channels, k, padding=k // 2, bias=bias)
        self.norm = make_norm(spec.norm, out_channels, spec.grid)
        if bias and spec.norm != "none":  # before a norm a bias only offsets channels at random:
            nn.init.zeros_(self.conv.bias)  # the norm's shift is the gates' starting bias

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))


def init_forget_bias(conv: GateConv, gate_index: int, n_gates: int, value: float = 1.0) -> None:
    """Start a forget gate open (bias +1), as LSTMs usually are; the paper leaves b_f free.

    Only where the gates have learned biases (the paper variant; the reference code adds a
    constant instead). With a layer norm the +1 goes into the norm's shift, after the
    normalisation: in the convolution's bias the norm would mix it away (it would raise every
    gate's mean by 2/7 and leave the forget gate at +0.7 above the others, or at 0 when the
    forget gate is the convolution's only output).
    """
    if conv.conv.bias is None:
        return
    bias = conv.conv.bias if isinstance(conv.norm, nn.Identity) else conv.norm.bias
    c = bias.shape[0] // n_gates
    with torch.no_grad():
        bias[gate_index * c : (gate_index + 1) * c].fill_(value)


class LSTMState(NamedTuple):
    """Hidden and cell state of one recurrent unit, each (B, C, h, w)."""

    h: Tensor
    c: Tensor


class MIMState(NamedTuple):
    """State of a MIM block: H, C, the MIM-N state (D, N) and the MIM-S memory S."""

    h: Tensor
    c: Tensor
    n: LSTMState
    s: Tensor


@dataclass(frozen=True)
class PatchLayout:
    """Frames (C, H, W) <-> feature maps (p*p*C, ceil(H/p), ceil(W/p)).

    Where H or W is no multiple of p, frames are padded at the bottom and the right (`mode`:
    replicate, reflect or zeros) before folding, and cropped back after unfolding.
    """

    p: int
    height: int
    width: int
    mode: str = "replicate"

    @property
    def pad(self) -> tuple[int, int]:
        return -self.height % self.p, -self.width % self.p

    def _padded(self, x: Tensor) -> Tensor:
        ph, pw = self.pad
        if not (ph or pw):
            return x
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])  # (N, C, H, W)
        mode = "constant" if self.mode == "zeros" else self.mode
        flat = F.pad(flat, (0, pw, 0, ph), mode=mode)
        return flat.reshape(*lead, *flat.shape[-3:])

    def fold(self, x: Tensor) -> Tensor:
        """(B, T, C, H, W) -> (B, T, p*p*C, h, w), padded as needed."""
        return fold_patches(self._padded(x), self.p)

    def unfold(self, y: Tensor) -> Tensor:
        """(B, T, p*p*C, h, w) -> (B, T, C, H, W), the padding cropped."""
        return unfold_patches(y, self.p)[..., : self.height, : self.width]

    def refold(self, y: Tensor) -> Tensor:
        """A folded prediction (B, p*p*C, h, w) whose padding is made again from its own
        pixels, as the padding of a true frame is: a fed-back prediction then looks like a
        true frame everywhere (a no-op without padding)."""
        if self.pad == (0, 0):
            return y
        return self.fold(self.unfold(y[:, None]))[:, 0]


def fold_patches(x: Tensor, p: int) -> Tensor:
    """(B, T, C, H, W) -> (B, T, p*p*C, H/p, W/p), channel index (row*p + col)*C + c.

    This is the channel order of OpenSTL/PredRNN's reshape_patch, so their weights load as they
    are (torch.pixel_unshuffle orders channels as c*p*p + row*p + col instead).
    """
    if p == 1:
        return x
    b, t, c, h, w = x.shape
    x = x.reshape(b, t, c, h // p, p, w // p, p)
    x = x.permute(0, 1, 4, 6, 2, 3, 5)  # (B, T, row, col, C, H/p, W/p)
    return x.reshape(b, t, p * p * c, h // p, w // p)


def unfold_patches(x: Tensor, p: int) -> Tensor:
    """Inverse of fold_patches: (B, T, p*p*C, H/p, W/p) -> (B, T, C, H, W)."""
    if p == 1:
        return x
    b, t, pc, hp, wp = x.shape
    c = pc // (p * p)
    x = x.reshape(b, t, p, p, c, hp, wp)
    x = x.permute(0, 1, 4, 5, 2, 6, 3)  # (B, T, C, H/p, row, W/p, col)
    return x.reshape(b, t, c, hp * p, wp * p)


def zeros_state(like: Tensor, channels: int) -> Tensor:
    """A zero state with `channels` channels and the batch, grid, dtype and device of `like`."""
    b, _, h, w = like.shape
    return torch.zeros(b, channels, h, w, dtype=like.dtype, device=like.device)


def layer_probe(probe, layer: int):
    """Bind a stack-level probe (layer, name, value) to one layer; None stays None (no cost)."""
    if probe is None:
        return None
    return lambda name, value: probe(layer, name, value)


def full_frame(folded: Tensor, p: int) -> Tensor:
    """One step's folded map (B, p*p*C, h, w) -> the frame it holds (B, C, p*h, p*w), padding
    kept: the heads that transform the frame (DFN, CDNA) work at full resolution."""
    return unfold_patches(folded[:, None], p)[:, 0]


def folded_frame(frame: Tensor, p: int) -> Tensor:
    """Inverse of full_frame: (B, C, p*h, p*w) -> (B, p*p*C, h, w)."""
    return fold_patches(frame[:, None], p)[:, 0]


def neighbourhoods(frame: Tensor, k: int) -> Tensor:
    """The k x k neighbourhood of every pixel: (B, C, H, W) -> (B, C, k*k, H, W), zero outside
    the frame; tap i*k + j of pixel (y, x) is frame[..., y + i - k//2, x + j - k//2] (a
    cross-correlation's order, as DFN's and CDNA's filters are applied)."""
    b, c, h, w = frame.shape
    taps = F.unfold(frame, k, padding=k // 2)  # (B, C*k*k, H*W), channel-major
    return taps.reshape(b, c, k * k, h, w)
