"""The zigzag spatiotemporal memory M shared by PredRNN and MIM (and PredRNN++ / V2).

M flows up through the layers within a time step and from the top layer at t-1 to the first
layer at t. Where hidden sizes differ between layers, a 1x1 convolution (no bias) adapts M's
channels on its way into a layer; with equal sizes (the paper's setting) there is none.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from mimcast.models.cells import STLSTMCell
from mimcast.models.config import ModelConfig
from mimcast.models.variants import conv_spec, variant


class ZigzagState(NamedTuple):
    layers: tuple  # one state per layer (LSTMState, or MIMState for MIM blocks)
    m: Tensor  # spatiotemporal memory leaving the top layer


def memory_adapters(hidden: tuple[int, ...]) -> nn.ModuleList:
    """Adapters for M entering each layer: from the top layer (layer 0) or the layer below."""
    sources = (hidden[-1], *hidden[:-1])
    return nn.ModuleList(
        nn.Identity() if c_in == c else nn.Conv2d(c_in, c, 1, bias=False)
        for c_in, c in zip(sources, hidden)
    )


def st_lstm_layer(config: ModelConfig, in_channels: int, hidden: int) -> STLSTMCell:
    """An ST-LSTM layer for this config: PredRNN's layers and MIM's first layer."""
    v = variant(config)
    return STLSTMCell(
        in_channels, hidden, conv_spec(config), bias=v.bias, forget_bias=v.forget_bias
    )
