"""PredRNN (Wang et al. 2017): ST-LSTM layers with the zigzag spatiotemporal memory M."""

from __future__ import annotations

from torch import Tensor, nn

from mimcast.models.config import ModelConfig
from mimcast.models.layers import LSTMState, layer_probe, zeros_state
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.zigzag import ZigzagState, memory_adapters, st_lstm_layer


class PredRNNStack(RecurrentStack):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        ins = (config.frame_channels, *config.hidden[:-1])
        self.layers = nn.ModuleList(
            st_lstm_layer(config, c_in, c) for c_in, c in zip(ins, config.hidden)
        )
        self.m_in = memory_adapters(config.hidden)
        self.hidden = config.hidden
        self.out_channels = config.hidden[-1]

    def initial_state(self, x: Tensor) -> ZigzagState:
        layers = tuple(LSTMState(zeros_state(x, c), zeros_state(x, c)) for c in self.hidden)
        return ZigzagState(layers, zeros_state(x, self.hidden[-1]))

    def forward(
        self,
        x: Tensor,
        state: ZigzagState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
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
def build_predrnn(config: ModelConfig) -> RecurrentStack:
    return PredRNNStack(config)
