"""ST-ResNet (Zhang, Zheng and Qi, AAAI 2017, "Deep Spatio-Temporal Residual Networks for
Citywide Crowd Flows Prediction"): three residual convolutional branches on the recent past
(closeness), the same slot on earlier days (period) and weeks (trend), fused by learned
per-cell weights, plus a dense branch on external factors, in one pass per predicted slot.

The equations (Sec. 4 of the paper), for the slot tau predicted from F flow channels:

    X^(1) = conv1(X_in)                      X_in = the branch's frames stacked on channels
    X^(l+1) = X^(l) + F(X^(l)),  F(X) = conv(ReLU(conv(ReLU(X))))      (L residual units)
    X_k = conv2(ReLU(X^(L+1)))               (F channels; k = c closeness, p period, q trend)
    X_Res = W_c o X_c + W_p o X_p + W_q o X_q              (W_k: one weight per flow and cell)
    X_Ext = ReLU(Dense_2(ReLU(Dense_1(E_tau))))            (10 units, then F x h x w)
    X^_tau = tanh(X_Res + X_Ext)

Frames reach it in mimcast's model units [0, 1]; the paper min-max scales flows to [-1, 1] to
match tanh, so flows are mapped by 2x - 1 on the way in and the output by (tanh + 1) / 2.

How it reads (B, T, C, H, W): each step reads one frame of C = F (1 + len_p + len_q) + E
channels: channel 0..F-1 are the flows of the slot just read; the rest, when the data gives
them (the taxibj data set with period_days, trend_weeks, externals), are the period frames of
the *next* slot, 1..len_p days back, then its trend frames, 1..len_q weeks back, newest first,
then its E external factors as constant maps. Those are `given_inputs`: data, not forecasts;
the rollout takes them from the data at every step (rollout.py). The closeness branch reads
the flows of the last len_c frames read, newest first, kept in the state: a frame predicted
by the model is read back as the next closeness frame, so a 4-step forecast (Table 7 of the
MIM paper) is recursive, as the MIM paper says it ran ST-ResNet ("by regarding previous
generated images as inputs"). Until len_c frames have been read, the earliest frame stands in
for the missing ones. `predict(context, horizon)` refuses a model with given inputs (a context
alone lacks the period frames of later slots): forecast with model(frames, context_len). On
data without them (len_p = len_q = E = 0) it is the closeness branch alone: with one branch
there is no fusion weight, as in the reference code.

Sizes: `hidden` gives one entry per residual unit, its width (every convolution of a branch
but the last has hidden[0] channels at paper sizes: all entries equal). Where two entries
differ the unit's shortcut is a 1x1 convolution (a choice: the paper's units all have one
width). The paper's TaxiBJ model: hidden (64,) * 12, 3x3 filters, len_c 3, len_p 1, len_q 1,
E 28, 32 x 32 cells (patch 1); it has no Moving MNIST or KTH size. The study presets size
it to MIM's parameter count (studies/catalogue.py SIZES).

Reference code read, never copied: lucktroy/DeepST deepst/models/STResNet.py (Keras, the
authors'; read from its forks, the original is not stored here) and KL4805/STResNet-PyTorch.
Faithful to DeepST: no BatchNorm (its bn flag is off), ReLU before each convolution of a unit
and before conv2, ReLU after both dense layers, per-cell fusion weights drawn from U[0, 1),
Glorot-uniform weights and zero biases (Keras's defaults). KL4805's port adds BatchNorm and
drops the ReLU before conv2 and the one after the last dense layer: not offered (no parity
fixture was made against it). model.layer_norm puts mimcast's layer norm (variants.py) where
DeepST's optional BatchNorm sits, before each ReLU of a unit; off in the paper.
model.residual is refused: the output is a tanh, not a head that can start at zero.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mimcast.errors import ConfigError
from mimcast.models.config import ModelConfig
from mimcast.models.layers import ConvSpec, make_norm
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec

EXTERNAL_UNITS = 10  # the first dense layer of the external branch (DeepST)


class STResNetState(NamedTuple):
    closeness: Tensor  # (B, len_c * F, h, w): the last len_c frames read, in [-1, 1], newest first


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    nn.init.xavier_uniform_(conv.weight)  # Keras's glorot_uniform, zero bias
    nn.init.zeros_(conv.bias)
    return conv


class ResidualUnit(nn.Module):
    """X + conv_b(ReLU(conv_a(ReLU(X)))): the paper's residual unit (the norms are identities
    unless model.layer_norm)."""

    def __init__(self, c_in: int, c_out: int, spec: ConvSpec) -> None:
        super().__init__()
        k = spec.filter_size
        self.norm_a, self.conv_a = make_norm(spec.norm, c_in, spec.grid), _conv(c_in, c_out, k)
        self.norm_b, self.conv_b = make_norm(spec.norm, c_out, spec.grid), _conv(c_out, c_out, k)
        # a width change needs a projection on the shortcut (never at the paper's sizes)
        self.shortcut = nn.Identity() if c_in == c_out else _conv(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        r = self.conv_a(F.relu(self.norm_a(x)))
        return self.shortcut(x) + self.conv_b(F.relu(self.norm_b(r)))


class Branch(nn.Module):
    """conv1 -> residual units -> ReLU -> conv2: one of closeness, period and trend."""

    def __init__(self, c_in: int, hidden: tuple[int, ...], c_out: int, spec: ConvSpec) -> None:
        super().__init__()
        k = spec.filter_size
        self.conv1 = _conv(c_in, hidden[0], k)
        self.units = nn.ModuleList(
            ResidualUnit(a, b, spec) for a, b in zip((hidden[0], *hidden[:-1]), hidden)
        )
        self.conv2 = _conv(hidden[-1], c_out, k)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        for unit in self.units:
            x = unit(x)
        return self.conv2(F.relu(x))


class Fusion(nn.Module):
    """Parametric-matrix fusion: sum_k W_k o X_k, one weight per branch, flow and cell."""

    def __init__(self, branches: int, channels: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(branches, channels, *grid))  # DeepST: U[0, 1)

    def forward(self, outputs: list[Tensor]) -> Tensor:
        return sum(w * x for w, x in zip(self.weight, outputs, strict=True))


class External(nn.Module):
    """ReLU(Dense_2(ReLU(Dense_1(e)))) reshaped to (F, h, w): the external-factor branch."""

    def __init__(self, factors: int, channels: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.shape = (channels, *grid)
        self.embed = nn.Linear(factors, EXTERNAL_UNITS)
        self.out = nn.Linear(EXTERNAL_UNITS, channels * grid[0] * grid[1])
        for layer in (self.embed, self.out):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, e: Tensor) -> Tensor:
        y = F.relu(self.out(F.relu(self.embed(e))))
        return y.reshape(e.shape[0], *self.shape)


class TanhHead(nn.Module):
    """The prediction in model units: (tanh(X_Res + X_Ext) + 1) / 2 (no weights, no zero start)."""

    def forward(self, h: Tensor, x_in: Tensor | None = None) -> Tensor:  # noqa: ARG002
        return (torch.tanh(h) + 1) / 2


class STResNetStack(RecurrentStack):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c, e = config.frame_channels, config.stresnet_externals
        lens = (config.stresnet_closeness, config.stresnet_period, config.stresnet_trend)
        frames = sum(lens[1:]) + 1
        if c <= e or (c - e) % frames:
            raise ConfigError(
                f"stresnet: {c} channels per frame do not split into {frames} frames of flows "
                f"(1 + model.stresnet_period + model.stresnet_trend) and {e} external factors"
            )
        self.flows = f = (c - e) // frames
        self.lens = lens
        self.given_inputs = tuple(
            (name, n)
            for name, n in (("period", f * lens[1]), ("trend", f * lens[2]), ("externals", e))
            if n
        )
        spec = conv_spec(config)
        self.layers = nn.ModuleList(Branch(n * f, config.hidden, f, spec) for n in lens if n)
        self.fusion = Fusion(len(self.layers), f, config.grid) if len(self.layers) > 1 else None
        self.external = External(e, f, config.grid) if e else None
        self.out_channels = f

    def build_head(self, config: ModelConfig) -> nn.Module:
        return TanhHead()

    @property
    def input_conv(self) -> nn.Module:
        # nothing of a step reads the frame alone: every branch reads the frames stacked
        return nn.Identity()

    def initial_state(self, x: Tensor) -> STResNetState:
        first = 2 * x[:, : self.flows] - 1
        return STResNetState(first.repeat(1, self.lens[0], 1, 1))

    def forward(
        self,
        x: Tensor,
        state: STResNetState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, STResNetState]:
        """x_gates is x itself (input_conv is the identity) and is not needed; no probes."""
        if state is None:
            state = self.initial_state(x)
        f = self.flows
        closeness = torch.cat([2 * x[:, :f] - 1, state.closeness[:, :-f]], dim=1)
        inputs, start = [closeness], f
        for n in self.lens[1:]:
            if n:
                inputs.append(2 * x[:, start : start + n * f] - 1)
                start += n * f
        outputs = [branch(v) for branch, v in zip(self.layers, inputs, strict=True)]
        z = outputs[0] if self.fusion is None else self.fusion(outputs)
        if self.external is not None:
            z = z + self.external(x[:, start:].mean(dim=(2, 3)))  # constant maps -> a vector
        return z, STResNetState(closeness)


@register_model("stresnet", variants=("paper",))
def build_stresnet(config: ModelConfig) -> RecurrentStack:
    return STResNetStack(config)
