"""PredRNN-V2 (Wang et al., TPAMI 2022): PredRNN's ST-LSTM stack with the decoupling loss.

At every step and layer the memory increments dC = i o g and dM = i' o g' go through one shared
1x1 adapter, are L2-normalised over space (per sample and channel), and the loss is the mean
absolute cosine similarity between them: it pushes C and M to learn different things. (With
hidden sizes that differ between layers, the layers of each size share one adapter.) The
model puts it in `aux["decoupling_loss"]`; the trainer adds train.decouple_beta times it.
(Reverse scheduled sampling, the paper's other part, is a training option: the `predrnnv2`
preset uses it.)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mimcast.models.cells import STLSTMCell
from mimcast.models.config import ModelConfig
from mimcast.models.layers import LSTMState, layer_probe
from mimcast.models.predrnn import PredRNNStack
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec, variant
from mimcast.models.zigzag import ZigzagState


def decoupling(adapter: nn.Module, delta_c: Tensor, delta_m: Tensor) -> Tensor:
    """mean over (batch, channel) of |cos(adapter(dC), adapter(dM))| over space."""
    b, c = delta_c.shape[:2]
    dc = F.normalize(adapter(delta_c).reshape(b, c, -1), dim=2)
    dm = F.normalize(adapter(delta_m).reshape(b, c, -1), dim=2)
    return F.cosine_similarity(dc, dm, dim=2).abs().mean()


class PredRNNv2Stack(PredRNNStack):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        v, spec = variant(config), conv_spec(config)
        ins = (config.frame_channels, *config.hidden[:-1])
        self.layers = nn.ModuleList(
            STLSTMCell(c_in, c, spec, bias=v.bias, forget_bias=v.forget_bias, increments=True)
            for c_in, c in zip(ins, config.hidden)
        )
        self.adapters = nn.ModuleDict(
            {str(c): nn.Conv2d(c, c, 1, bias=False) for c in sorted(set(config.hidden))}
        )

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
        m, h = state.m, x
        new_layers: list[LSTMState] = []
        for l, (cell, adapt, st) in enumerate(zip(self.layers, self.m_in, state.layers)):
            g = x_gates if l == 0 else None
            (h, m, delta_c, delta_m), st = cell((h, adapt(m)), st, layer_probe(probe, l), g)
            new_layers.append(st)
            if aux is not None:
                adapter = self.adapters[str(delta_c.shape[1])]
                aux.add("decoupling_loss", decoupling(adapter, delta_c, delta_m))
        return h, ZigzagState(tuple(new_layers), m)


@register_model("predrnnv2")
def build_predrnnv2(config: ModelConfig) -> RecurrentStack:
    return PredRNNv2Stack(config)
