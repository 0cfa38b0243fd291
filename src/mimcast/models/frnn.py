"""FRNN (Oliu, Selva and Escalera, ECCV 2018, "Folded Recurrent Neural Networks for Future
Video Prediction"): a recurrent auto-encoder folded onto itself. Each layer is a bijective
ConvGRU (bGRU): two GRUs over the same two states, the layer's input s_l and its output h_l.
The encoder GRU f_l updates h_l from s_l; the decoder GRU b_l updates s_l from what comes
down from above. The states are shared: what the encoder of layer l wrote is what the
decoder of layer l + 1 updates, so the decoder needs no copy of the encoder's information.

    encoder (a step that reads a frame), l = 1..L bottom-up:
        s_l = P(conv features of x_t)  (l = 1),  P(h_{l-1})  (l odd, > 1),  h_{l-1}  (l even)
        h_l = f_l(s_l, h_l)
    encoder (a step that does not: the model's own prediction is never encoded):
        h_L = f_L(s_L, h_L)                 (the top layer alone, from the s_L decoded last)
    decoder, every step, l = L..1 top-down (y = h_L to start):
        s_l = b_l(y, s_l),  y = U(s_l) where a pooling P came before layer l, else s_l
        x_{t+1} = the transposed convolutions of y (tanh)

and each GRU, input a, state c:  [r, z] = sigmoid(W_rz * [a, c] + b_rz),
c~ = tanh(W_c * [a, r o c] + b_c),  c' = z o c~ + (1 - z) o c.  P is a 2x2 max pooling (the
TF "SAME" one: a side of odd length rounds up), U its inverse, each value repeated in a 2x2
block (cropped to the level below). The frame goes through two tanh convolutions of 32 and
64 channels before P; the decoder ends with their transposes, the same weights (tied) with
biases of their own, so the last layer's tanh is the prediction. Each h_l starts at a learned
value per channel, each s_l at zero (overwritten by the first step's encoder).

Reference code read, never copied: moliusimon/frnn (TF1) network/layer/bconvgru.py (the two
GRUs of a layer, `forward` and `backward`), network/topology/folded.py and network/folded.py
(the encoder over the context, then the decoder and the top layer's `update_state` per
predicted frame), network/layer/convolutional.py (the tied transposes),
network/layer/pooling.py, network/toolkit/initialize.py (the learned initial state).

How mimcast's rollout runs it: a step that reads a frame (a context frame, or a true frame
by scheduled sampling) runs the encoder, then the decoder, which predicts the next frame. A
step that would read the model's own prediction gets x=None (`reads_predictions = False`):
only the top layer's encoder runs, from the state the decoder left, then the decoder. With
the context encoded and every later step x=None this is exactly the reference's prediction;
the reference makes no prediction during the context, mimcast's decoder makes one at every
step (the next encoder step overwrites every s_l it changed, so the encoding is the
reference's). Scheduled sampling: a mask of 1 makes a step encode the true frame, 0 makes it
encode nothing; masks must be 0 or 1 per sample and step (rollout.py refuses others).

Sizes: `hidden` gives the bGRU layers bottom-up, two per level, a pooling before each pair
(the first after the convolutions): the reference's Moving MNIST and KTH model is
hidden=(128, 128, 256, 256, 512, 512, 256, 256) on 64 x 64 (KTH 64 x 80) frames, patch 1,
5x5 filters at the first two levels and 3x3 at the last two (105.7M parameters); the FRNN
paper has no TaxiBJ model (Table 7's FRNN row is the MIM authors' run, size unknown). mimcast
has one filter_size for every layer and sizes the studies to MIM's budget (studies/catalogue.py
SIZES keeps the reference's proportions, 1:1:2:2:4:4:2:2).

Choices and what is not here: the reference trains on the predicted frames only with an L1 loss;
mimcast's trainer scores every prediction with its own loss (the MIM paper trains all models
with L2). The FRNN paper's layer removal (the top layers taken away from a trained model: the
reference's analysis/layer_removal.py) and any training with layers dropped are not here: the
reference's training code (network/folded.py) trains the full stack, and so does mimcast; a
shallower model is a shorter `hidden`, trained as such. PyTorch's default initialisation
replaces the reference's scaled orthogonal one. `layer_norm` (not in the paper) normalises the
gate pre-activations. The prediction is the tanh of the last transposed convolution, as in the
reference, whose frames are in [-1, 1]: mimcast's data sets give [0, 1], inside that range; data
whose model units leave [-1, 1] cannot be reached. There is no OpenSTL FRNN (variant "paper"
only), and `model.residual` is refused: a residual FRNN would add the prediction it reads to the
next one, and FRNN reads no prediction.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mimcast.models.config import ModelConfig
from mimcast.models.layers import ConvSpec, GateConv, Probe, layer_probe
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec

FRAME_CONVS = (32, 64)  # the reference's two tanh convolutions, on every data set


def pool(x: Tensor) -> Tensor:
    """2x2 max pooling, stride 2; a side of odd length rounds up (TF's "SAME")."""
    return F.max_pool2d(x, 2, ceil_mode=True)


def unpool(y: Tensor, size: tuple[int, int]) -> Tensor:
    """Each value repeated in a 2x2 block, cropped to `size` (the level below)."""
    return F.interpolate(y, scale_factor=2, mode="nearest")[..., : size[0], : size[1]]


def pooled_before(layer: int) -> bool:
    """A pooling before every pair of layers, the first right after the convolutions."""
    return layer % 2 == 0


class ConvGRUCell(nn.Module):
    """One GRU of a bGRU: input a (B, in_channels, h, w), state c (B, channels, h, w) -> c'."""

    def __init__(self, in_channels: int, channels: int, spec: ConvSpec) -> None:
        super().__init__()
        self.gates = GateConv(in_channels + channels, 2 * channels, spec, bias=True)  # r z
        self.candidate = GateConv(in_channels + channels, channels, spec, bias=True)

    def forward(self, a: Tensor, c: Tensor, probe: Probe | None = None) -> Tensor:
        r, z = torch.sigmoid(self.gates(torch.cat([a, c], dim=1))).chunk(2, dim=1)
        c_cand = torch.tanh(self.candidate(torch.cat([a, r * c], dim=1)))
        if probe is not None:
            probe("update", z)
        return z * c_cand + (1 - z) * c


class BijectiveGRU(nn.Module):
    """A bGRU layer: `encode` updates the output state h from the input state s, `decode`
    updates s from what comes down from above; h starts at the learned `h0`."""

    def __init__(self, in_channels: int, channels: int, spec: ConvSpec) -> None:
        super().__init__()
        self.encode = ConvGRUCell(in_channels, channels, spec)
        self.decode = ConvGRUCell(channels, in_channels, spec)
        self.h0 = nn.Parameter(torch.zeros(channels))


class FrameEncoder(nn.Module):
    """The frame's tanh convolutions and the first pooling (all that reads x alone), and
    their transposes, which end the decoder with the same weights and biases of their own."""

    def __init__(self, frame_channels: int, k: int) -> None:
        super().__init__()
        widths = (frame_channels, *FRAME_CONVS)
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, k, padding=k // 2) for a, b in zip(widths, widths[1:])
        )
        self.back_bias = nn.ParameterList(nn.Parameter(torch.zeros(c)) for c in widths[:-1])

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = torch.tanh(conv(x))
        return pool(x)

    def decode(self, y: Tensor) -> Tensor:
        """(B, 64, h, w) at the grid -> the predicted folded frame (B, p*p*C, h, w)."""
        for conv, bias in zip(reversed(self.convs), reversed(self.back_bias)):
            y = torch.tanh(F.conv_transpose2d(y, conv.weight, bias, padding=conv.padding))
        return y


class FRNNState(NamedTuple):
    h: tuple[Tensor, ...]  # each layer's output state, bottom-up
    s: tuple[Tensor, ...]  # each layer's input state (what its decoder updates)


class FRNNStack(RecurrentStack):
    """The frame encoder, the bGRU layers and the decoder through them, one step; the
    frame comes out of the stack itself (the head passes it on)."""

    reads_predictions = False  # predictions are not re-encoded

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        spec = conv_spec(config)
        self.frame = FrameEncoder(config.frame_channels, config.filter_size)
        ins = (FRAME_CONVS[-1], *config.hidden[:-1])
        self.layers = nn.ModuleList(BijectiveGRU(a, c, spec) for a, c in zip(ins, config.hidden))
        self.grid = config.grid
        self.out_channels = config.frame_channels

    def build_head(self, config: ModelConfig) -> nn.Module:
        return DecodedFrame()

    @property
    def input_conv(self) -> nn.Module:
        return self.frame

    def initial_state(self, x: Tensor) -> FRNNState:
        b, size = x.shape[0], tuple(x.shape[-2:])
        h, s = [], []
        for l, layer in enumerate(self.layers):
            if pooled_before(l):
                size = (-(-size[0] // 2), -(-size[1] // 2))
            # a sum, not a view of h0: in inference mode a view of a parameter would claim a
            # gradient it has no graph for (torch's FLOP counter, in `mimcast bench`, trips)
            h0 = layer.h0.to(x.dtype).view(1, -1, 1, 1)
            h.append(x.new_zeros(b, h0.shape[1], *size) + h0)
            s.append(x.new_zeros(b, layer.decode.candidate.conv.out_channels, *size))
        return FRNNState(tuple(h), tuple(s))

    def forward(
        self,
        x: Tensor | None,
        state: FRNNState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, FRNNState]:
        """x None: the step after a prediction (only the top layer's encoder runs). Probes:
        the update gates z of the encoders (layers 0..L-1), then of the decoders (L..2L-1)."""
        if state is None:
            state = self.initial_state(x)
        h, s = list(state.h), list(state.s)
        top = len(self.layers) - 1
        if x is None:  # the reference's update_state
            h[top] = self.layers[top].encode(s[top], h[top], layer_probe(probe, top))
        else:
            self._encode(self.frame(x) if x_gates is None else x_gates, h, s, probe)
        frame = self._decode(h, s, probe)
        return frame, FRNNState(tuple(h), tuple(s))

    def _encode(self, inp: Tensor, h: list[Tensor], s: list[Tensor], probe) -> None:
        """Bottom-up from the frame's features: every s_l and h_l, in place."""
        for l, layer in enumerate(self.layers):
            if l > 0:
                inp = pool(h[l - 1]) if pooled_before(l) else h[l - 1]
            s[l] = inp
            h[l] = layer.encode(inp, h[l], layer_probe(probe, l))

    def _decode(self, h: list[Tensor], s: list[Tensor], probe) -> Tensor:
        """Top-down from h_L: every s_l in place, then the frame."""
        n = len(self.layers)
        y = h[-1]
        for l in reversed(range(n)):
            s[l] = self.layers[l].decode(y, s[l], layer_probe(probe, n + l))
            y = s[l]
            if pooled_before(l):
                y = unpool(y, self.grid if l == 0 else tuple(h[l - 1].shape[-2:]))
        return self.frame.decode(y)


class DecodedFrame(nn.Module):
    """The head: the decoder emits the frame already. It has no `zero_output_`, so
    `model.residual` is refused (see the module docstring)."""

    def forward(self, h: Tensor, x_in: Tensor | None = None) -> Tensor:  # noqa: ARG002
        return h


@register_model("frnn", variants=("paper",))
def build_frnn(config: ModelConfig) -> RecurrentStack:
    return FRNNStack(config)
