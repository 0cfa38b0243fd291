"""PredRNN++ (Wang et al., ICML 2018): Causal LSTM layers, the zigzag memory M, and a gradient
highway unit (GHU) between the first and the second layer.

The GHU reads H^1_t and its own last output Z_{t-1}; Z_t is the second layer's input. Layers
above the second read the hidden state of the layer below, as in PredRNN.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from mimcast.errors import ConfigError
from mimcast.models.cells import GradientHighway
from mimcast.models.config import ModelConfig
from mimcast.models.layers import LSTMState, layer_probe, zeros_state
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec, variant
from mimcast.models.zigzag import memory_adapters


class HighwayState(NamedTuple):
    layers: tuple[LSTMState, ...]  # (H, C) of each Causal LSTM layer
    m: Tensor  # spatiotemporal memory leaving the top layer
    z: Tensor  # the gradient highway's output Z_{t-1}


class PredRNNppStack(RecurrentStack):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if len(config.hidden) < 2:
            raise ConfigError("predrnnpp needs at least 2 layers (the highway sits between them)")
        v, spec = variant(config), conv_spec(config)
        ins = (config.frame_channels, *config.hidden[:-1])
        self.layers = nn.ModuleList(
            v.causal_cell(c_in, c, spec, bias=v.bias) for c_in, c in zip(ins, config.hidden)
        )
        h0 = config.hidden[0]
        self.highway = GradientHighway(h0, h0, spec, bias=v.bias)
        if v.highway_init is not None:
            _uniform_conv_weights(self.highway, v.highway_init)
        self.m_in = memory_adapters(config.hidden)
        self.hidden = config.hidden
        self.out_channels = config.hidden[-1]

    def initial_state(self, x: Tensor) -> HighwayState:
        layers = tuple(LSTMState(zeros_state(x, c), zeros_state(x, c)) for c in self.hidden)
        return HighwayState(layers, zeros_state(x, self.hidden[-1]), zeros_state(x, self.hidden[0]))

    def forward(
        self,
        x: Tensor,
        state: HighwayState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, HighwayState]:
        if state is None:
            state = self.initial_state(x)
        m, h, z = state.m, x, state.z
        new_layers = []
        for l, (cell, adapt, st) in enumerate(zip(self.layers, self.m_in, state.layers)):
            (h, m), st = cell((h, adapt(m)), st, layer_probe(probe, l), x_gates if l == 0 else None)
            new_layers.append(st)
            if l == 0:  # the highway between the first and the second layer
                z = h = self.highway(h, state.z)
        return h, HighwayState(tuple(new_layers), m, z)


def _uniform_conv_weights(module: nn.Module, bound: float) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.uniform_(-bound, bound)


@register_model("predrnnpp")
def build_predrnnpp(config: ModelConfig) -> RecurrentStack:
    return PredRNNppStack(config)
