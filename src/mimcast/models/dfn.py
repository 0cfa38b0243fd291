"""DFN (De Brabandere, Jia et al., NIPS 2016, "Dynamic Filter Networks"): a filter-generating
network emits one k x k filter per pixel, and the next frame is the frame the step read,
filtered by them:

    x_{t+1}(c, y, x) = sum_{i,j} F_t(c, i*k + j, y, x) * x_t(c, y + i - k//2, x + j - k//2),

each filter a softmax over its k*k taps (k = model.dfn_filter_size, 9 in the paper). The
network is the paper's Moving MNIST model as its official code builds it (dbbert/dfn,
models/model_bouncingMnistOriginal.py): convolutions with leaky ReLUs (slope 0.01), an
encoder, a convolutional recurrence

    h_t = lrelu(W_e * e_t) + lrelu(W_2 * lrelu(W_1 * h_{t-1}))      (an RNN, not an LSTM)

a decoder, a 1x1 convolution, and the filter-generating 1x1 convolution (the head).

Sizes: `hidden` is (encoder widths..., state width); the decoder has as many convolutions as
the encoder, each as wide as the encoder's last, then a 1x1 convolution to the state width,
so hidden=(32, 32, 64, 64, 128) with filter_size 3 is the paper's network (its 0.6M
parameters). The paper halves the resolution at its second convolution and doubles it again
halfway through the decoder; here the patch folding does that: the network runs on the folded
grid and the head generates p*p filters per grid cell, one per pixel, so patch_size 2 on
64 x 64 frames gives the paper's 32 x 32 grid.

Choices, stated: every channel gets its own filters (the official code applies one filter to
every channel of a colour frame; with one channel, as on Moving MNIST and KTH, the two are the
same model). The paper's dynamic bias and refinement network, which its Moving MNIST model
does not use, are left out. `layer_norm` (not in the paper) adds a layer norm after every
convolution of the network. There is no OpenSTL code (variant "paper" only), and
`model.residual` is refused: the prediction is already a filtering of the last frame, whose
identity filter is persistence.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from mimcast.models.config import ModelConfig
from mimcast.models.layers import (
    folded_frame,
    full_frame,
    make_norm,
    neighbourhoods,
    zeros_state,
)
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec

LEAK = 0.01  # Lasagne's leaky_rectify, every hidden layer of the official model


class DFNState(NamedTuple):
    h: Tensor  # the recurrent state h_t (B, state width, h, w)


def conv_block(c_in: int, c_out: int, k: int, norm: str) -> nn.Sequential:
    """A convolution (same padding, bias), the optional layer norm, a leaky ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, padding=k // 2),
        make_norm(norm, c_out, (1, 1)),  # (the grid matters only for the "chw" norm)
        nn.LeakyReLU(LEAK),
    )


class DFNStack(RecurrentStack):
    """Encoder, recurrence and decoder of the filter-generating network, one step."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        k, norm = config.filter_size, conv_spec(config).norm
        *widths, state = config.hidden
        ins = (config.frame_channels, *widths)
        # everything that reads x alone: the encoder and the input half of the recurrence
        self.encode = nn.Sequential(
            *(conv_block(a, b, k, norm) for a, b in zip(ins, widths)),
            conv_block(ins[-1], state, k, norm),
        )
        self.recur = nn.Sequential(
            conv_block(state, state, k, norm), conv_block(state, state, k, norm)
        )
        dec = widths[-1:] * len(widths)  # (none with one entry in hidden: the state alone)
        dec_ins = (state, *dec)
        self.decode = nn.Sequential(
            *(conv_block(a, b, k, norm) for a, b in zip(dec_ins, dec)),
            conv_block(dec_ins[-1], state, 1, norm),
        )
        self.state_channels = state
        self.out_channels = state

    def build_head(self, config: ModelConfig) -> nn.Module:
        return DynamicFilterHead(self.out_channels, config)

    @property
    def input_conv(self) -> nn.Module:
        return self.encode

    def initial_state(self, x: Tensor) -> DFNState:
        return DFNState(zeros_state(x, self.state_channels))

    def forward(
        self,
        x: Tensor,
        state: DFNState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, DFNState]:
        """(No gates to probe.) The first step runs the recurrence on the zero state, as the
        official code does, so its biases reach h_0 too."""
        if state is None:
            state = self.initial_state(x)
        e = self.encode(x) if x_gates is None else x_gates
        h = e + self.recur(state.h)
        return self.decode(h), DFNState(h)


class DynamicFilterHead(nn.Module):
    """The filter-generating layer (a 1x1 convolution with bias, no activation) and the
    dynamic filtering of the frame the step read, at full resolution."""

    def __init__(self, in_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.p, self.channels = config.patch_size, config.in_channels
        self.k = config.dfn_filter_size
        self.filters = nn.Conv2d(in_channels, self.p**2 * self.channels * self.k**2, 1)

    def forward(self, h: Tensor, x_in: Tensor) -> Tensor:
        logits = full_frame(self.filters(h), self.p)  # (B, C*k*k, H, W): tap of channel c
        b, _, height, width = logits.shape
        filters = logits.reshape(b, self.channels, self.k**2, height, width).softmax(dim=2)
        return folded_frame(filter_pixels(full_frame(x_in, self.p), filters), self.p)


def filter_pixels(frame: Tensor, filters: Tensor) -> Tensor:
    """DFN's dynamic filtering layer: frame (B, C, H, W), filters (B, C, k*k, H, W) -> (B, C,
    H, W); tap i*k + j weighs the pixel (i - k//2, j - k//2) away (zero outside the frame)."""
    k = round(filters.shape[2] ** 0.5)
    return (neighbourhoods(frame, k) * filters).sum(dim=2)


@register_model("dfn", variants=("paper",))
def build_dfn(config: ModelConfig) -> RecurrentStack:
    return DFNStack(config)
