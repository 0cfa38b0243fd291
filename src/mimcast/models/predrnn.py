"""PredRNN (Wang et al. 2017): ST-LSTM layers with the zigzag spatiotemporal memory M.

M flows up through the layers within a time step and from the top layer at t-1 to the first
layer at t. Where hidden sizes differ between layers, a 1x1 convolution (no bias) adapts M's
channels on its way into a layer; with equal sizes (the paper's setting) there is none.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from mimcast.models.cells import STLSTMCell
from mimcast.models.config import ModelConfig
from mimcast.models.layers import LSTMState, layer_probe, zeros_state
from mimcast.models.reference_cells import FORGET_BIAS
from mimcast.models.registry import norm_kind, register_model


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


def st_lstm(config: ModelConfig, in_channels: int, hidden: int) -> STLSTMCell:
    """An ST-LSTM layer for this config: PredRNN's layers and MIM's first layer."""
    paper = config.variant == "paper"  # the reference has no biases and a constant forget bias
    return STLSTMCell(
        in_channels,
        hidden,
        config.filter_size,
        config.grid,
        norm_kind(config),
        bias=paper,
        forget_bias=0.0 if paper else FORGET_BIAS,
    )


class PredRNNStack(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        ins = (config.frame_channels, *config.hidden[:-1])
        self.layers = nn.ModuleList(st_lstm(config, c_in, c) for c_in, c in zip(ins, config.hidden))
        self.m_in = memory_adapters(config.hidden)
        self.hidden = config.hidden
        self.out_channels = config.hidden[-1]

    @property
    def input_conv(self) -> nn.Module:
        """The first layer's input convolution (the rollout batches it over known inputs)."""
        return self.layers[0].conv_x

    def initial_state(self, x: Tensor) -> ZigzagState:
        layers = tuple(LSTMState(zeros_state(x, c), zeros_state(x, c)) for c in self.hidden)
        return ZigzagState(layers, zeros_state(x, self.hidden[-1]))

    def forward(
        self, x: Tensor, state: ZigzagState | None, probe=None, x_gates=None
    ) -> tuple[Tensor, ZigzagState]:
        if state is None:
            state = self.initial_state(x)
        m = state.m
        h = x
        new_layers = []
        for l, (cell, adapt, st) in enumerate(zip(self.layers, self.m_in, state.layers)):
            g = x_gates if l == 0 else None
            (h, m), st = cell((h, adapt(m)), st, layer_probe(probe, l), g)
            new_layers.append(st)
        return h, ZigzagState(tuple(new_layers), m)


@register_model("predrnn")
def build_predrnn(config: ModelConfig) -> nn.Module:
    return PredRNNStack(config)
