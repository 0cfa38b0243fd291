"""MCNet (Villegas, Yang, Hong, Lin and Lee, ICLR 2017, "Decomposing Motion and Content for
Natural Video Sequence Prediction"): a motion encoder reads the difference of the last two
frames and keeps a ConvLSTM, a content encoder reads the last frame alone, combination layers
merge the two at the bottleneck, and a decoder with unpooling goes back up, fed at every
scale by residual connections from both encoders:

    d_t = x_t - x_{t-1},   (e_t, m_t^1..m_t^L) = f_dyn(d_t),   h_t = ConvLSTM(e_t, h_{t-1})
    (s_t, c_t^1..c_t^L) = f_cont(x_t),   f_t = g_comb(h_t, s_t)
    r_t^l = conv(relu(conv([m_t^l, c_t^l])))                  (the residual of scale l)
    u^L = f_t,  u^{l-1} = deconvs(relu(unpool(u^l) + r_t^l)),   x_{t+1} = tanh(last deconv)

m^l and c^l are the encoders' outputs at scale l before its max pooling, [a, b] is channel
concatenation, the unpooling puts each value at the top-left of a 2 x 2 block of zeros (the
official code's FixedUnPooling), and every convolution but the residuals' second and the last
is followed by a ReLU. The previous frame x_{t-1} lives in the stack's state, with the
ConvLSTM's. Reference code read, never copied: rubenvillegas/iclr2017mcnet src/mcnet.py
(TensorFlow, official) and sunxm2357/mcnet_pytorch models/networks.py (PyTorch port).

Sizes: `hidden` is the width of each scale, (64, 128, 256) in the paper (gf_dim = 64): the
motion encoder has one convolution per scale (5 x 5, 5 x 5, then 7 x 7), the content encoder
the VGG pattern (2, 2, then 3 convolutions of `filter_size`), the ConvLSTM is as wide as the
last scale, the combination layers are (w_L, w_{L-1}, w_L) wide, and the decoder mirrors the
content encoder with transposed convolutions. `filter_size` is the size of every convolution
but the motion encoder's (3 in the paper). The paper's KTH and UCF-101 network is hidden=(64,
128, 256), filter_size 3, on full frames (patch_size 1): 128 x 128 KTH frames give a 16 x 16
ConvLSTM of 256 channels (14.1M parameters); it has no Moving MNIST or TaxiBJ model. The
studies use hidden=(56, 112, 224) (the MIM paper's budget) and (17, 34, 68) on the CPU
(studies/catalogue.py SIZES). With patch folding the network runs on the folded grid.

Choices, stated:
- Units: the paper's frames are in [-1, 1] and its differences in [0, 1] (both codes take
  them of inverse-transformed frames); mimcast's model units are [0, 1], so the content
  encoder reads 2x - 1, the motion encoder x_t - x_{t-1}, and the output is (1 + tanh) / 2:
  the paper's network exactly, for data in [0, 1] (every built-in data set and minmax-
  normalised custom data); its predictions stay in [0, 1].
- The first step: there is no previous frame, so the motion encoder reads a zero difference
  and the ConvLSTM is not stepped (its output is its zero initial state). The paper's K
  context frames give K - 1 differences and K - 1 ConvLSTM steps; here too, so the forecasts
  after a context are the paper's (the prediction of frame 1 from frame 0 is mimcast's extra).
- The ConvLSTM (the official code's BasicConvLSTMCell: no peepholes, a constant +1 on the
  forget gate) is mimcast's ConvLSTMCell without peepholes, whose learned forget bias starts
  at +1: the same function. `layer_norm` (not in the paper) normalises its gates.
- Initialisation: the official code's, Glorot-uniform weights and zero biases (`official_init`).
- A colour frame's motion is its full difference (the paper converts it to grey first); with
  one channel, as on KTH, the two are the same.
- Frames whose scales halve to odd sizes: the max pooling rounds up and the unpooled maps are
  cropped to the residual's size (the paper's sizes are multiples of 8, where nothing is cut).
- The losses: the paper trains on L2 + the gradient difference loss (alpha = 1) + an
  adversarial term. The gradient difference compares the prediction with the true frame, so
  it is not a term of the model's internal state (which is what `aux` carries): it is the
  training loss `train.loss: mse+gdl` (training/losses.py), which any model may use and the
  MCNet study preset uses. The adversarial term and its discriminator are not implemented.
- The PyTorch port drops the ReLU that the official code applies to unpool(u) + r before each
  decoder stage; here it is kept (the official code). tests/fixtures/mcnet_parity.npz holds
  the port's outputs with that ReLU put back (scripts/mcnet_fixture.py says how).
There is no OpenSTL code (variant "paper" only), and `model.residual` is refused: the decoder
reads the last frame through its content encoder and the residuals already.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mimcast.models.cdna import level_grids
from mimcast.models.cells import ConvLSTMCell
from mimcast.models.config import ModelConfig
from mimcast.models.layers import ConvSpec, LSTMState, init_forget_bias, layer_probe
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec

MOTION_KERNELS = (5, 5, 7)  # the motion encoder's filter per scale (7 for every deeper one)
CONTENT_CONVS = (2, 2, 3)  # convolutions per scale of the content encoder (VGG; 3 deeper on)


class MCNetState(NamedTuple):
    motion: LSTMState  # the motion ConvLSTM's (h, c) at the bottleneck grid
    previous: Tensor  # the folded frame the last step read, for the next difference


def _per_scale(values: tuple[int, ...], n: int) -> list[int]:
    """The paper's value for each of n scales, its last one repeated for deeper scales."""
    return [values[min(l, len(values) - 1)] for l in range(n)]


def _conv_relu(c_in: int, c_out: int, k: int, *, transposed: bool = False) -> list[nn.Module]:
    conv = nn.ConvTranspose2d if transposed else nn.Conv2d
    return [conv(c_in, c_out, k, padding=k // 2), nn.ReLU()]


def pool(x: Tensor) -> Tensor:
    """2 x 2 max pooling, rounding odd sizes up."""
    return F.max_pool2d(x, 2, ceil_mode=True)


def unpool(x: Tensor, like: Tensor) -> Tensor:
    """Each value at the top-left of a 2 x 2 block of zeros (the official code's
    FixedUnPooling), cropped to the grid of `like`: (B, C, h, w) -> (B, C, H, W)."""
    b, c, h, w = x.shape
    x = torch.stack([x, torch.zeros_like(x)], dim=-1).reshape(b, c, h, 2 * w)
    x = torch.stack([x, torch.zeros_like(x)], dim=-2).reshape(b, c, 2 * h, 2 * w)
    return x[..., : like.shape[-2], : like.shape[-1]]


class ScaleEncoder(nn.Module):
    """Convolutions per scale, each scale after a pooling: x -> (the pooled bottom, the
    output of every scale before its pooling, which the residuals read). `first` is the first
    scale's module; the others are made from `widths` and `kernels` (those of scales 2..L)."""

    def __init__(
        self, first: nn.Module, c_in: int, widths: tuple[int, ...], kernels: list[list[int]]
    ) -> None:
        super().__init__()
        self.first = first
        self.scales = nn.ModuleList()
        for c, ks in zip(widths, kernels):
            convs: list[nn.Module] = []
            for k in ks:
                convs += _conv_relu(c_in, c, k)
                c_in = c
            self.scales.append(nn.Sequential(*convs))

    def forward(self, x: Tensor, first: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """`first`: self.first(x) computed beforehand."""
        outs = [self.first(x) if first is None else first]
        for scale in self.scales:
            outs.append(scale(pool(outs[-1])))
        return pool(outs[-1]), outs


class ContentInput(nn.Sequential):
    """The content encoder's first scale, on the frame as the paper's [-1, 1] (2x - 1): what
    a step computes from the frame alone (the rollout may batch it over the known steps)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(2 * x - 1)


class MCNetStack(RecurrentStack):
    """Motion and content encoders, combination, residuals and decoder, one step."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        widths, k, n = config.hidden, config.filter_size, len(config.hidden)
        c_frame = config.frame_channels
        motion = _per_scale(MOTION_KERNELS, n)
        self.convs = _per_scale(CONTENT_CONVS, n)
        self.motion = ScaleEncoder(
            nn.Sequential(*_conv_relu(c_frame, widths[0], motion[0])),
            widths[0], widths[1:], [[kk] for kk in motion[1:]],
        )  # fmt: skip
        content_first = [*_conv_relu(c_frame, widths[0], k)]
        for _ in range(self.convs[0] - 1):
            content_first += _conv_relu(widths[0], widths[0], k)
        self.content = ScaleEncoder(
            ContentInput(*content_first), widths[0], widths[1:], [[k] * m for m in self.convs[1:]]
        )
        bottom, middle = widths[-1], widths[-2] if n > 1 else widths[-1]
        grid = level_grids(config.grid, n)[-1]
        spec = ConvSpec(k, grid, conv_spec(config).norm)
        # the motion ConvLSTM is the stack's one recurrent layer (layer 0 for gate probes)
        self.layers = nn.ModuleList([ConvLSTMCell(bottom, bottom, spec, peephole=False)])
        self.combine = nn.Sequential(
            *_conv_relu(2 * bottom, bottom, k),
            *_conv_relu(bottom, middle, k),
            *_conv_relu(middle, bottom, k),
        )
        self.residuals = nn.ModuleList(
            nn.Sequential(*_conv_relu(2 * c, c, k), nn.Conv2d(c, c, k, padding=k // 2))
            for c in widths
        )
        self.decoder = nn.ModuleList()  # scale l: transposed convs of width w_l, to w_{l-1}
        for l, (c, m) in enumerate(zip(widths, self.convs)):
            outs = [c] * (m - 1) + ([widths[l - 1]] if l > 0 else [])
            stage: list[nn.Module] = []
            for a, b in zip([c, *outs], outs):
                stage += _conv_relu(a, b, k, transposed=True)
            self.decoder.append(nn.Sequential(*stage))
        self.widths, self.grid = widths, grid
        self.out_channels = widths[0]
        official_init(self)

    @property
    def lstm(self) -> ConvLSTMCell:
        return self.layers[0]

    def build_head(self, config: ModelConfig) -> nn.Module:
        return FrameHead(self.out_channels, config.frame_channels, config.filter_size)

    @property
    def input_conv(self) -> nn.Module:
        return self.content.first

    def initial_state(self, x: Tensor) -> MCNetState:
        zeros = x.new_zeros(x.shape[0], self.widths[-1], *self.grid)
        return MCNetState(LSTMState(zeros, zeros), x)

    def forward(
        self,
        x: Tensor,
        state: MCNetState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, MCNetState]:
        """`x_gates`: content.first(x) computed beforehand. The first step (state None) has no
        previous frame: a zero difference, and the ConvLSTM keeps its zero state."""
        first = state is None
        if first:
            state = self.initial_state(x)
        e, motion_skips = self.motion(x - state.previous)
        if first:
            h, lstm = state.motion.h, state.motion
        else:
            h, lstm = self.lstm(e, state.motion, layer_probe(probe, 0))
        s, content_skips = self.content(x, first=x_gates)
        out = self.combine(torch.cat([h, s], dim=1))
        for l in range(len(self.widths) - 1, -1, -1):
            r = self.residuals[l](torch.cat([motion_skips[l], content_skips[l]], dim=1))
            out = self.decoder[l](F.relu(unpool(out, like=r) + r))
        return out, MCNetState(lstm, x)


def official_init(module: nn.Module) -> None:
    """The official code's initialisation: Glorot-uniform weights and zero biases for every
    convolution, the ConvLSTM's included; its forget gate's bias then starts at +1 (the
    constant the official cell adds). With PyTorch's defaults (smaller weights, random biases)
    a narrow MCNet often starts with a deep scale whose ReLUs are all off."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, ConvLSTMCell):
            init_forget_bias(m.conv_x, 1, 4)


class FrameHead(nn.ConvTranspose2d):
    """The decoder's last transposed convolution and the paper's tanh, mapped from its
    [-1, 1] to model units: (1 + tanh) / 2."""

    def __init__(self, in_channels: int, frame_channels: int, k: int) -> None:
        super().__init__(in_channels, frame_channels, k, padding=k // 2)
        official_init(self)

    def forward(self, h: Tensor, x_in: Tensor | None = None) -> Tensor:  # noqa: ARG002
        return (1 + torch.tanh(super().forward(h))) / 2


@register_model("mcnet", variants=("paper",))
def build_mcnet(config: ModelConfig) -> RecurrentStack:
    return MCNetStack(config)
