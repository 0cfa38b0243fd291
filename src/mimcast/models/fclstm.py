"""FC-LSTM (Srivastava et al. 2015, "Unsupervised Learning of Video Representations using
LSTMs"): fully connected LSTM layers with peepholes on the flattened frame, in the
future-predictor form.

Like every model it takes frames (B, T, C, H, W); each step reads one frame as a vector: the
folded frame (p*p*C, h, w) flattened to p*p*C*h*w numbers (patch folding only reorders the
pixels, which a fully connected layer does not see), the frame padded first where its size is
no multiple of the patch. The LSTM is the paper's (Graves 2013, peepholes from the cells):

    i = s(W_xi x + W_hi h + w_ci o c_{t-1} + b_i)    f = s(W_xf x + W_hf h + w_cf o c_{t-1} + b_f)
    c_t = f o c_{t-1} + i o tanh(W_xc x + W_hc h + b_c)
    o = s(W_xo x + W_ho h + w_co o c_t + b_o)         h_t = o o tanh(c_t)

with diagonal peepholes w_c. This is ConvLSTM with every feature on one cell (Shi et al. 2015
say so: FC-LSTM is its special case with 1x1 states), so each layer here is a ConvLSTMCell
with 1x1 filters on a 1x1 grid; `config.hidden` are the layer sizes. The head is a linear
layer from the top hidden vector back to the frame (FlatHead).

What is simplified: the paper's future predictor is a separate LSTM that starts from the
encoder's last state and sees no frame; here, as for every model of mimcast, one stack reads the
context frames and then its own predictions (the paper's "conditional" predictor with the
encoder's weights shared), scheduled sampling included. The paper's output is a logistic unit
trained with cross-entropy; here it is linear, trained with mimcast's MSE. The variant changes
only the kind of layer norm (model.layer_norm): there is no OpenSTL FC-LSTM, and the
peepholes and biases are always the paper's.
"""

from __future__ import annotations

from torch import Tensor, nn

from mimcast.models.cells import ConvLSTMCell
from mimcast.models.config import ModelConfig
from mimcast.models.layers import ConvSpec, LSTMState, layer_probe, zeros_state
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec

FCLSTMState = tuple[LSTMState, ...]


def as_vector(x: Tensor) -> Tensor:
    """A folded frame (B, C', h, w) as one feature vector on a 1x1 grid: (B, C'*h*w, 1, 1)."""
    return x.reshape(x.shape[0], -1, 1, 1)


class FlattenedInput(nn.Module):
    """The first layer's input weights applied to a folded frame (flattened first): what the
    rollout batches over the known steps (`input_conv`)."""

    def __init__(self, conv_x: nn.Module) -> None:
        super().__init__()
        self.conv_x = conv_x

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_x(as_vector(x))


class FlatHead(nn.Linear):
    """Linear map from the top hidden vector to the folded frame (B, C', h, w), with a bias."""

    def __init__(self, hidden: int, frame: tuple[int, int, int]) -> None:
        super().__init__(hidden, frame[0] * frame[1] * frame[2])
        self.frame = frame

    def forward(self, h: Tensor, x_in: Tensor | None = None) -> Tensor:  # noqa: ARG002
        return super().forward(h.flatten(1)).reshape(h.shape[0], *self.frame)

    def zero_output_(self) -> None:
        """Zero weights and bias: the head outputs 0 until trained (model.residual)."""
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


class FCLSTMStack(RecurrentStack):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        h, w = config.grid
        spec = ConvSpec(1, (1, 1), conv_spec(config).norm)  # 1x1 filters on one cell: FC
        ins = (config.frame_channels * h * w, *config.hidden[:-1])
        self.layers = nn.ModuleList(
            ConvLSTMCell(c_in, c, spec, bias=True, peephole=True)
            for c_in, c in zip(ins, config.hidden)
        )
        self.hidden = config.hidden
        self.out_channels = config.hidden[-1]
        self.frame = (config.frame_channels, h, w)

    def build_head(self, config: ModelConfig) -> nn.Module:
        return FlatHead(self.out_channels, self.frame)

    @property
    def input_conv(self) -> nn.Module:
        # made on each call, not a submodule: the weights stay (once) in layers[0]
        return FlattenedInput(self.layers[0].conv_x)

    def initial_state(self, x: Tensor) -> FCLSTMState:
        v = as_vector(x)
        return tuple(LSTMState(zeros_state(v, c), zeros_state(v, c)) for c in self.hidden)

    def forward(
        self,
        x: Tensor,
        state: FCLSTMState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, FCLSTMState]:
        if state is None:
            state = self.initial_state(x)
        new_state = []
        h = as_vector(x)
        for l, (cell, st) in enumerate(zip(self.layers, state)):
            h, st = cell(h, st, layer_probe(probe, l), x_gates if l == 0 else None)
            new_state.append(st)
        return h, tuple(new_state)


@register_model("fclstm")
def build_fclstm(config: ModelConfig) -> RecurrentStack:
    return FCLSTMStack(config)
