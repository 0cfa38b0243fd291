"""MIM (Wang et al. 2019): an ST-LSTM first layer, then MIM blocks, with the zigzag memory M.

The MIM-N unit of block l reads the difference of the hidden states of the layer below,
H_t^{l-1} - H_{t-1}^{l-1} (zero at the first step). In the reference code (variant="openstl")
only the second layer reads that difference; higher layers read the MIM-N output D of the layer
below (a cascade of differences).
"""

from __future__ import annotations

from torch import Tensor, nn

from mimcast.errors import ConfigError
from mimcast.models.cells import MIMBlock
from mimcast.models.config import ModelConfig
from mimcast.models.layers import LSTMState, MIMState, layer_probe, zeros_state
from mimcast.models.predrnn import ZigzagState, memory_adapters, st_lstm
from mimcast.models.reference_cells import RefMIMBlock
from mimcast.models.registry import norm_kind, register_model


class MIMStack(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if len(config.hidden) < 2:
            raise ConfigError("mim needs at least 2 layers (an ST-LSTM, then MIM blocks)")
        hidden = config.hidden
        block = MIMBlock if config.variant == "paper" else RefMIMBlock
        self.layers = nn.ModuleList(
            [st_lstm(config, config.frame_channels, hidden[0])]
            + [
                block(
                    hidden[l - 1],
                    hidden[l],
                    config.filter_size,
                    config.grid,
                    norm_kind(config),
                    config.mim_n,
                    config.mim_s,
                )
                for l in range(1, len(hidden))
            ]
        )
        self.m_in = memory_adapters(hidden)
        self.cascade = config.variant == "openstl" and config.mim_n
        self.hidden = hidden
        self.out_channels = hidden[-1]

    @property
    def input_conv(self) -> nn.Module:
        """The first layer's input convolution (the rollout batches it over known inputs)."""
        return self.layers[0].conv_x

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
        self, x: Tensor, state: ZigzagState | None, probe=None, x_gates=None
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
def build_mim(config: ModelConfig) -> nn.Module:
    return MIMStack(config)
