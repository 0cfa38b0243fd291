"""TrajGRU (Shi et al. 2017, "Deep Learning for Precipitation Nowcasting: A Benchmark and A New
Model"): a ConvGRU whose state-to-state connections follow learned, location-variant flows.

At each step a flow sub-network gamma(X_t, H_{t-1}) gives L flow fields (U_l, V_l); the state
is warped along each by bilinear sampling, and the warped states feed the gates through 1x1
convolutions (Eq. 3 of the paper):

    U, V = gamma(X_t, H_{t-1})                  (5x5 conv of X_t + 5x5 conv of H_{t-1}, leaky
                                                  ReLU, 5x5 conv to 2L channels)
    Z = s(W_xz * X + sum_l W_hz^l * warp(H_{t-1}, U_l, V_l))
    R = s(W_xr * X + sum_l W_hr^l * warp(H_{t-1}, U_l, V_l))
    H' = f(W_xh * X + R o sum_l W_hh^l * warp(H_{t-1}, U_l, V_l))
    H_t = (1 - Z) o H' + Z o H_{t-1}             f = leaky ReLU (slope 0.2)

The flow's last convolution starts at zero, weights and bias, as the official MXNet code does
(INIT_GRID): every link starts as the identity warp, and the network learns to move away from
it (at the first step only that convolution gets gradients; the layers before it follow after
one update).

The warp samples H at (i + V_ij, j + U_ij) for each pixel (i, j), bilinearly, with zeros
outside the grid: the paper's formula. It is one `grid_sample` with align_corners=False and the
grid normalised for that convention, x_norm = (2x + 1) / W - 1, which puts pixel centres at
whole coordinates, as MXNet's BilinearSampler does with its (align_corners=True) normalisation
2x / (W - 1) - 1; the two agree exactly (this one also for a side of one pixel). The PyTorch
ports normalise for align_corners=True but call grid_sample with its default, False since
torch 1.3: a half-pixel shift and a slight zoom, which mimcast does not inherit by default
(model.trajgru_grid="torch_port" reproduces it, to load such a port's weights), nor their
random initialisation of the flow. (MXNet and the ports sample at p - flow: the same model with
the flow's sign flipped; tests/models/test_trajgru_parity.py loads Hzzone/Precipitation-
Nowcasting's TrajGRU with its last flow convolution negated.)

The network is the paper's encoder-forecaster, sized by config.hidden (one level per entry,
each at half the resolution of the one below): the frame goes through a convolution to 16
channels and the encoder levels bottom-up, downsampled between levels by 3x3 stride-2
convolutions; the forecaster levels run top-down, upsampled by 4x4 stride-2 transposed
convolutions, and two convolutions to 16 channels end in the head. filter_size is the size of
the frame, input-to-state and output convolutions (3 in the paper); the flow network keeps the
paper's 5x5 filters and 32 channels. What is simplified, and why: mimcast's one rollout feeds
every step a frame (the context, then its own prediction) and wants a prediction from every
step, so encoder and forecaster both run at every step, each level with its own weights and
state; the top forecaster level reads the top encoder level's output, where the paper's
forecaster reads nothing and starts from the encoder's final states instead. The variant
changes only the kind of layer norm (model.layer_norm, on the gate convolutions): there is no
OpenSTL TrajGRU.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mimcast.errors import ConfigError
from mimcast.models.config import ModelConfig
from mimcast.models.layers import ConvSpec, GateConv, Probe, layer_probe
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec

SLOPE = 0.2  # the leaky ReLU of the paper's code, everywhere
FLOW_CHANNELS, FLOW_FILTER = 32, 5  # the flow network of the paper's code
FRAME_FEATURES = 16  # the first convolution and the last two (FIRST_CONV, LAST_DECONV)


def leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, SLOPE)


def _normalised(coord: Tensor, size: int, grid: str) -> Tensor:
    """Pixel coordinates -> grid_sample's [-1, 1] (align_corners=False)."""
    if grid == "torch_port":  # the ports' normalisation for align_corners=True, as they have it
        return 2 * coord / max(size - 1, 1) - 1
    return (2 * coord + 1) / size - 1  # pixel centres at whole numbers


def warp(h: Tensor, flow: Tensor, grid: str = "centres") -> Tensor:
    """h (N, C, H, W) sampled bilinearly at (i + v, j + u) for every pixel (i, j), zero outside;
    flow (N, 2, H, W) = (u, v) in pixels, u along the width; grid: model.trajgru_grid."""
    height, width = h.shape[-2:]
    rows = torch.arange(height, dtype=flow.dtype, device=flow.device).view(height, 1)
    cols = torch.arange(width, dtype=flow.dtype, device=flow.device).view(1, width)
    x = _normalised(cols + flow[:, 0], width, grid)
    y = _normalised(rows + flow[:, 1], height, grid)
    points = torch.stack((x, y), dim=-1).to(h.dtype)  # (N, H, W, 2), x first
    return F.grid_sample(h, points, mode="bilinear", padding_mode="zeros", align_corners=False)


def warp_links(h: Tensor, flows: Tensor, grid: str = "centres") -> Tensor:
    """h (B, C, H, W) warped along each of L flows (B, 2L, H, W): (B, L*C, H, W), link-major."""
    b, c, height, width = h.shape
    links = flows.shape[1] // 2
    many = h.unsqueeze(1).expand(b, links, c, height, width).reshape(b * links, c, height, width)
    warped = warp(many, flows.reshape(b * links, 2, height, width), grid)  # one sampling for all L
    return warped.reshape(b, links * c, height, width)


class TrajGRUCell(nn.Module):
    """One TrajGRU layer (Eq. 3): input X (B, C_in, H, W), state H (B, C, H, W) -> H_t."""

    def __init__(
        self, in_channels: int, hidden: int, links: int, spec: ConvSpec, grid: str = "centres"
    ) -> None:
        super().__init__()
        self.grid = grid  # model.trajgru_grid
        pad = FLOW_FILTER // 2
        self.conv_x = GateConv(in_channels, 3 * hidden, spec, bias=True)  # r z h'
        self.flow_x = nn.Conv2d(in_channels, FLOW_CHANNELS, FLOW_FILTER, padding=pad)
        self.flow_h = nn.Conv2d(hidden, FLOW_CHANNELS, FLOW_FILTER, padding=pad)
        self.flow_out = nn.Conv2d(FLOW_CHANNELS, 2 * links, FLOW_FILTER, padding=pad)
        nn.init.zeros_(self.flow_out.weight)  # identity warps at the start (MXNet's INIT_GRID)
        nn.init.zeros_(self.flow_out.bias)
        spec_1x1 = ConvSpec(1, spec.grid, spec.norm)
        self.conv_h = GateConv(links * hidden, 3 * hidden, spec_1x1, bias=True)  # W_h^l, all l

    def flows(self, x: Tensor, h: Tensor) -> Tensor:
        """The flow sub-network gamma(X_t, H_{t-1}): (B, 2L, H, W), (u, v) per link."""
        return self.flow_out(leaky(self.flow_x(x) + self.flow_h(h)))

    def forward(self, x: Tensor, h: Tensor, probe: Probe | None = None) -> Tensor:
        r_x, z_x, h_x = self.conv_x(x).chunk(3, dim=1)
        warped = warp_links(h, self.flows(x, h), self.grid)
        r_h, z_h, h_h = self.conv_h(warped).chunk(3, dim=1)
        r_t = torch.sigmoid(r_x + r_h)
        z_t = torch.sigmoid(z_x + z_h)
        h_cand = leaky(h_x + r_t * h_h)
        if probe is not None:
            probe("update", z_t)
        return (1 - z_t) * h_cand + z_t * h


class TrajGRUState(NamedTuple):
    """The hidden state of every encoder level (bottom-up) and forecaster level (bottom-up)."""

    encoder: tuple[Tensor, ...]
    forecaster: tuple[Tensor, ...]


def level_grids(grid: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """State sizes per level: each a 3x3 stride-2 convolution (padding 1) of the one below."""
    out = [grid]
    for _ in range(levels - 1):
        h, w = out[-1]
        out.append((-(-h // 2), -(-w // 2)))
    return out


def links_per_level(config: ModelConfig) -> tuple[int, ...]:
    links, levels = config.trajgru_links, len(config.hidden)
    if len(links) == 1:
        return links * levels
    if len(links) != levels:
        raise ConfigError(
            f"model.trajgru_links has {len(links)} values for {levels} levels (model.hidden): "
            "give one, or one per level"
        )
    return links


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)


class TrajGRUStack(RecurrentStack):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden, k = config.hidden, config.filter_size
        links = links_per_level(config)
        grids = level_grids(config.grid, len(hidden))
        specs = [ConvSpec(k, g, conv_spec(config).norm) for g in grids]
        self.frame_conv = _conv(config.frame_channels, FRAME_FEATURES, k)
        enc_in = (FRAME_FEATURES, *hidden[1:])  # a level reads the downsampled level below
        fore_in = (*hidden[1:], hidden[-1])  # ... the upsampled level above (the top: encoder)
        grid = config.trajgru_grid
        encoder = [TrajGRUCell(*a, grid) for a in zip(enc_in, hidden, links, specs)]
        forecaster = [TrajGRUCell(*a, grid) for a in zip(fore_in, hidden, links, specs)]
        self.layers = nn.ModuleList([*encoder, *forecaster])  # probes: encoder levels first
        self.down = nn.ModuleList(_conv(a, b, 3, stride=2) for a, b in zip(hidden, hidden[1:]))
        self.up = nn.ModuleList(nn.ConvTranspose2d(c, c, 4, 2, 1) for c in hidden[1:])
        self.out_convs = nn.ModuleList(
            [_conv(hidden[0], FRAME_FEATURES, k), _conv(FRAME_FEATURES, FRAME_FEATURES, k)]
        )
        self.hidden = hidden
        self.out_channels = FRAME_FEATURES

    @property
    def input_conv(self) -> nn.Module:
        return self.frame_conv

    def initial_state(self, x: Tensor) -> TrajGRUState:
        grids = level_grids(tuple(x.shape[-2:]), len(self.hidden))
        zeros = tuple(x.new_zeros(x.shape[0], c, h, w) for c, (h, w) in zip(self.hidden, grids))
        return TrajGRUState(zeros, zeros)

    def forward(
        self,
        x: Tensor,
        state: TrajGRUState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, TrajGRUState]:
        """x_gates: frame_conv(x), computed beforehand by the rollout."""
        if state is None:
            state = self.initial_state(x)
        n = len(self.hidden)
        inp = leaky(self.frame_conv(x) if x_gates is None else x_gates)
        encoder = []
        for l in range(n):
            if l > 0:
                inp = leaky(self.down[l - 1](encoder[-1]))
            encoder.append(self.layers[l](inp, state.encoder[l], layer_probe(probe, l)))
        inp = encoder[-1]
        forecaster = [None] * n
        for l in reversed(range(n)):
            forecaster[l] = self.layers[n + l](inp, state.forecaster[l], layer_probe(probe, n + l))
            if l > 0:
                height, width = encoder[l - 1].shape[-2:]  # 2x the level, cropped when odd
                inp = leaky(self.up[l - 1](forecaster[l]))[..., :height, :width]
        out = forecaster[0]
        for conv in self.out_convs:
            out = leaky(conv(out))
        return out, TrajGRUState(tuple(encoder), tuple(forecaster))


@register_model("trajgru")
def build_trajgru(config: ModelConfig) -> RecurrentStack:
    return TrajGRUStack(config)
