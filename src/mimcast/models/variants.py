"""What a variant changes, in one place.

`paper` follows the papers' equations; `openstl` reproduces OpenSTL's code (its port of the
official TensorFlow MIM), so that OpenSTL weights give OpenSTL's outputs. The model families
read these flags instead of testing the variant's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mimcast.models.cells import CausalLSTMCell
from mimcast.models.config import VARIANTS, ModelConfig
from mimcast.models.layers import ConvSpec
from mimcast.models.mim_cells import MIMBlock
from mimcast.models.reference_cells import FORGET_BIAS, RefCausalLSTMCell, RefMIMBlock


@dataclass(frozen=True)
class Variant:
    # Gate convolutions on the layer input carry a bias (the papers' b terms). OpenSTL's
    # convolutions have none.
    bias: bool
    # A constant added to forget-gate pre-activations: OpenSTL adds 1.0; the paper variant has
    # a learned bias b_f that starts at 1 instead.
    forget_bias: float
    # ConvLSTM's Hadamard peepholes W_c o C (Shi et al. 2015); OpenSTL's cell has none.
    peephole: bool
    # The layer norm of gate pre-activations when layer_norm=True (see layers.NORMS): "group"
    # is TF MIM's tensor_layer_norm (per channel, any frame size), "chw" OpenSTL's
    # nn.LayerNorm([C, H, W]) (per element: needed to load its weights).
    norm: str
    # The MIM block: Eq. (2)-(4) of the paper, or the reference code's arithmetic.
    mim_block: type[nn.Module]
    # MIM-N of layers >= 3 reads the MIM-N output of the layer below (reference code) instead
    # of the difference of the hidden states below (the paper).
    mimn_cascade: bool
    # PredRNN++'s Causal LSTM: Eq. (1) of its paper, or the reference code's arithmetic.
    causal_cell: type[nn.Module]
    # The gradient highway's initial weights: uniform within +-this (the TF code's 0.001), or
    # None for PyTorch's default initialisation.
    highway_init: float | None


TABLE: dict[str, Variant] = {
    "paper": Variant(
        bias=True, forget_bias=0.0, peephole=True, norm="group", mim_block=MIMBlock,
        mimn_cascade=False, causal_cell=CausalLSTMCell, highway_init=None,
    ),
    "openstl": Variant(
        bias=False, forget_bias=FORGET_BIAS, peephole=False, norm="chw", mim_block=RefMIMBlock,
        mimn_cascade=True, causal_cell=RefCausalLSTMCell, highway_init=0.001,
    ),
}  # fmt: skip
assert tuple(TABLE) == VARIANTS


def variant(config: ModelConfig) -> Variant:
    return TABLE[config.variant]


def conv_spec(config: ModelConfig) -> ConvSpec:
    """How this config's gate convolutions are made (filter, state grid, normalisation)."""
    norm = variant(config).norm if config.layer_norm else "none"
    return ConvSpec(config.filter_size, config.grid, norm)
