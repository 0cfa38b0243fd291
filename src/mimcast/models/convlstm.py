"""ConvLSTM (Shi et al. 2015): a stack of ConvLSTM cells, each layer reading the one below."""

from __future__ import annotations

from torch import Tensor, nn

from mimcast.models.cells import ConvLSTMCell
from mimcast.models.config import ModelConfig
from mimcast.models.layers import LSTMState, layer_probe, zeros_state
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec, variant

ConvLSTMStackState = tuple[LSTMState, ...]


class ConvLSTMStack(RecurrentStack):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        v = variant(config)
        ins = (config.frame_channels, *config.hidden[:-1])
        self.layers = nn.ModuleList(
            ConvLSTMCell(c_in, c, conv_spec(config), bias=v.bias, peephole=v.peephole)
            for c_in, c in zip(ins, config.hidden)
        )
        self.hidden = config.hidden
        self.out_channels = config.hidden[-1]

    def initial_state(self, x: Tensor) -> ConvLSTMStackState:
        return tuple(LSTMState(zeros_state(x, c), zeros_state(x, c)) for c in self.hidden)

    def forward(
        self,
        x: Tensor,
        state: ConvLSTMStackState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, ConvLSTMStackState]:
        if state is None:
            state = self.initial_state(x)
        new_state = []
        h = x
        for l, (cell, st) in enumerate(zip(self.layers, state)):
            h, st = cell(h, st, layer_probe(probe, l), x_gates if l == 0 else None)
            new_state.append(st)
        return h, tuple(new_state)


@register_model("convlstm")
def build_convlstm(config: ModelConfig) -> RecurrentStack:
    return ConvLSTMStack(config)
