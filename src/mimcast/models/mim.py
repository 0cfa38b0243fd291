"""MIM (Wang et al. 2019): an ST-LSTM first layer, then MIM blocks, with the zigzag memory M.

The MIM-N unit of block l reads the difference of the hidden states of the layer below,
H_t^{l-1} - H_{t-1}^{l-1} (zero at the first step). In the reference code (variant="openstl")
only the second layer reads that difference; higher layers read the MIM-N output D of the layer
below (a cascade of differences).
"""

from __future__ import annotations

from torch import Tensor, nn

from mimcast.errors import ConfigError
from mimcast.models.config import ModelConfig
from mimcast.models.layers import LSTMState, MIMState, layer_probe, zeros_state
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec, variant
from mimcast.models.zigzag import ZigzagState, memory_adapters, st_lstm_layer


class MIMStack(RecurrentStack):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if len(config.hidden) < 2:
            raise ConfigError("mim needs at least 2 layers (an ST-LSTM, then MIM blocks)")
        hidden = config.hidden
        v = variant(config)
        blocks = [
            v.mim_block(
                hidden[l - 1], hidden[l], conv_spec(config), mim_n=config.mim_n, mim_s=config.mim_s
            )
            for l in range(1, len(hidden))
        ]
        self.layers = nn.ModuleList([st_lstm_layer(config, config.frame_channels, hidden[0])])
        self.layers.extend(blocks)
        self.m_in = memory_adapters(hidden)
        self.cascade = v.mimn_cascade and config.mim_n
        self.hidden = hidden
        self.out_channels = hidden[-1]

    def initial_state(self, x: Tensor) -> ZigzagState:
        first = LSTMState(zeros_state(x, self.hidden[0]), zeros_state(x, self.hidden[0]))
        blocks = tuple(
            MIMState(
                zeros_state(x, c),
                zeros_state(x, c),
                LSTMState(zeros_state(x, c), zeros_state(x, c)),
                zeros_state(x, c),
            )
            for c in self.hidden[1:]
        )
        return ZigzagState((first, *blocks), zeros_state(x, self.hidden[-1]))

    def forward(
        self,
        x: Tensor,
        state: ZigzagState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, ZigzagState]:
        first_step = state is None
        if first_step:
            state = self.initial_state(x)
        (h, m), st = self.layers[0](
            (x, self.m_in[0](state.m)), state.layers[0], layer_probe(probe, 0), x_gates
        )
        new_layers = [st]
        h_prev_below = state.layers[0].h
        d_below = None
        for l in range(1, len(self.layers)):
            if first_step:
                diff = None
            elif self.cascade and l >= 2:
                diff = d_below
            else:
                diff = h - h_prev_below  # H_t^{l-1} - H_{t-1}^{l-1}
            h_prev_below = state.layers[l].h
            (h, m, d_below), st = self.layers[l](
                (h, diff, self.m_in[l](m)), state.layers[l], layer_probe(probe, l)
            )
            new_layers.append(st)
        return h, ZigzagState(tuple(new_layers), m)


@register_model("mim")
def build_mim(config: ModelConfig) -> RecurrentStack:
    return MIMStack(config)
