"""Recurrent cells written as the paper's equations.

Each cell is a small module whose forward takes (input, state) and returns (output, new_state);
no state is ever kept on the module. Names follow the paper: i/f/g/o are the input, forget,
modulation and output gates, primed names (suffix `_m`) the gates of the spatiotemporal memory M.
The `probe` argument is an opt-in hook for reading gate activations (Figure 7); it is None, and
costs nothing, unless the caller asks for it.

Equation numbers refer to Wang et al., "Memory In Memory", CVPR 2019.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from mimcast.models.layers import ConvSpec, GateConv, LSTMState, MIMState

Probe = Callable[[str, Tensor], None]


def _init_forget_bias(conv: GateConv, gate_index: int, n_gates: int, value: float = 1.0) -> None:
    """Start a forget gate open (bias +1), as LSTMs usually are; the paper leaves b_f free."""
    bias = conv.conv.bias
    if bias is not None:
        c = bias.shape[0] // n_gates
        with torch.no_grad():
            bias[gate_index * c : (gate_index + 1) * c].fill_(value)


class ConvLSTMCell(nn.Module):
    """ConvLSTM (Shi et al. 2015), with Hadamard peepholes W_c o C when `peephole` is set.

    i = s(W_xi*X + W_hi*H + W_ci o C_{t-1} + b_i)      f = s(W_xf*X + W_hf*H + W_cf o C_{t-1} + b_f)
    C_t = f o C_{t-1} + i o tanh(W_xg*X + W_hg*H + b_g)
    o = s(W_xo*X + W_ho*H + W_co o C_t + b_o)           H_t = o o tanh(C_t)
    OpenSTL's cell is the same without peepholes, biases or forget bias.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        spec: ConvSpec,
        *,
        bias: bool = True,
        peephole: bool = True,
    ) -> None:
        super().__init__()
        self.conv_x = GateConv(in_channels, 4 * hidden, spec, bias=bias)  # i f g o
        self.conv_h = GateConv(hidden, 4 * hidden, spec)  # i f g o
        _init_forget_bias(self.conv_x, 1, 4)
        if peephole:
            self.w_ci = nn.Parameter(torch.zeros(hidden, *spec.grid))
            self.w_cf = nn.Parameter(torch.zeros(hidden, *spec.grid))
            self.w_co = nn.Parameter(torch.zeros(hidden, *spec.grid))
        self.peephole = peephole

    def forward(
        self,
        x: Tensor,
        state: LSTMState,
        probe: Probe | None = None,
        x_gates: Tensor | None = None,
    ) -> tuple[Tensor, LSTMState]:
        """`x_gates`: conv_x(x) computed beforehand (batched over teacher-forced steps)."""
        h, c = state
        gx = self.conv_x(x) if x_gates is None else x_gates
        i_x, f_x, g_x, o_x = gx.chunk(4, dim=1)
        i_h, f_h, g_h, o_h = self.conv_h(h).chunk(4, dim=1)
        if self.peephole:
            i_t = torch.sigmoid(i_x + i_h + self.w_ci * c)
            f_t = torch.sigmoid(f_x + f_h + self.w_cf * c)
        else:
            i_t = torch.sigmoid(i_x + i_h)
            f_t = torch.sigmoid(f_x + f_h)
        g_t = torch.tanh(g_x + g_h)
        c_new = f_t * c + i_t * g_t
        o_pre = o_x + o_h + self.w_co * c_new if self.peephole else o_x + o_h
        h_new = torch.sigmoid(o_pre) * torch.tanh(c_new)
        if probe is not None:
            probe("forget", f_t)
        return h_new, LSTMState(h_new, c_new)


class STLSTMCell(nn.Module):
    """Spatiotemporal LSTM, Eq. (1): the PredRNN cell and the first layer of MIM.

    Input (X_t, M_t^{l-1}), state (H_{t-1}^l, C_{t-1}^l); output (H_t^l, M_t^l).
    `forget_bias` is a constant added to both forget gates (1.0 in the reference code; 0 in the
    paper variant, whose learned b_f starts at 1 instead).
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        spec: ConvSpec,
        *,
        bias: bool = True,
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv_x = GateConv(in_channels, 7 * hidden, spec, bias=bias)  # i f g i' f' g' o
        self.conv_h = GateConv(hidden, 4 * hidden, spec)  # i f g o
        self.conv_m = GateConv(hidden, 3 * hidden, spec)  # i' f' g'
        self.conv_o = GateConv(2 * hidden, hidden, spec)  # W_co * C_t + W_mo * M_t
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)  # W_1x1
        _init_forget_bias(self.conv_x, 1, 7)
        _init_forget_bias(self.conv_x, 4, 7)
        self.forget_bias = forget_bias

    def forward(
        self,
        inputs: tuple[Tensor, Tensor],
        state: LSTMState,
        probe: Probe | None = None,
        x_gates: Tensor | None = None,
    ) -> tuple[tuple[Tensor, Tensor], LSTMState]:
        """`x_gates`: conv_x(x) computed beforehand (batched over teacher-forced steps)."""
        x, m = inputs
        h, c = state
        gx = self.conv_x(x) if x_gates is None else x_gates
        i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = gx.chunk(7, dim=1)
        i_h, f_h, g_h, o_h = self.conv_h(h).chunk(4, dim=1)
        i_m, f_m, g_m = self.conv_m(m).chunk(3, dim=1)

        i_t = torch.sigmoid(i_x + i_h)
        f_t = torch.sigmoid(f_x + f_h + self.forget_bias)
        g_t = torch.tanh(g_x + g_h)
        c_new = f_t * c + i_t * g_t

        i_t_m = torch.sigmoid(i_xm + i_m)
        f_t_m = torch.sigmoid(f_xm + f_m + self.forget_bias)
        g_t_m = torch.tanh(g_xm + g_m)
        m_new = f_t_m * m + i_t_m * g_t_m

        mem = torch.cat((c_new, m_new), dim=1)
        o_t = torch.sigmoid(o_x + o_h + self.conv_o(mem))
        h_new = o_t * torch.tanh(self.conv_last(mem))
        if probe is not None:
            probe("forget", f_t)
        return (h_new, m_new), LSTMState(h_new, c_new)


class MIMN(nn.Module):
    """Non-stationary unit MIM-N, Eq. (3). Input: the difference H_t^{l-1} - H_{t-1}^{l-1}.

    State (D_{t-1}, N_{t-1}); output the differential features D_t = o o tanh(N_t).
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        spec: ConvSpec,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv_x = GateConv(in_channels, 4 * hidden, spec, bias=bias)  # i g f o
        self.conv_n = GateConv(hidden, 3 * hidden, spec)  # i g f  (W_n* N_{t-1})
        self.conv_o = GateConv(hidden, hidden, spec)  # W_no * N_t
        _init_forget_bias(self.conv_x, 2, 4)

    def forward(self, diff: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        n = state.c
        i_x, g_x, f_x, o_x = self.conv_x(diff).chunk(4, dim=1)
        i_n, g_n, f_n = self.conv_n(n).chunk(3, dim=1)
        g_t = torch.tanh(g_x + g_n)
        i_t = torch.sigmoid(i_x + i_n)
        f_t = torch.sigmoid(f_x + f_n)
        n_new = f_t * n + i_t * g_t
        o_t = torch.sigmoid(o_x + self.conv_o(n_new))
        d = o_t * torch.tanh(n_new)
        return d, LSTMState(d, n_new)


class MIMS(nn.Module):
    """Stationary unit MIM-S, Eq. (4). Input (D_t, C_{t-1}), state S_{t-1}.

    Its output o o tanh(S_t) takes the place of f_t o C_{t-1} in the MIM block.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        spec: ConvSpec,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv_d = GateConv(in_channels, 4 * hidden, spec, bias=bias)  # i g f o
        self.conv_c = GateConv(hidden, 4 * hidden, spec)  # i g f o
        self.conv_o = GateConv(hidden, hidden, spec)  # W_so * S_t
        _init_forget_bias(self.conv_d, 2, 4)

    def forward(self, inputs: tuple[Tensor, Tensor], s: Tensor) -> tuple[Tensor, Tensor]:
        d, c_prev = inputs
        i_d, g_d, f_d, o_d = self.conv_d(d).chunk(4, dim=1)
        i_c, g_c, f_c, o_c = self.conv_c(c_prev).chunk(4, dim=1)
        g_t = torch.tanh(g_d + g_c)
        i_t = torch.sigmoid(i_d + i_c)
        f_t = torch.sigmoid(f_d + f_c)
        s_new = f_t * s + i_t * g_t
        o_t = torch.sigmoid(o_d + o_c + self.conv_o(s_new))
        return o_t * torch.tanh(s_new), s_new


class ForgetGate(nn.Module):
    """Ablation "MIM without MIM-S": an ordinary forget gate from D_t and C_{t-1}.

    f = s(W_df * D_t + W_cf * C_{t-1} + b_f); returns f o C_{t-1} in place of MIM-S's output.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        spec: ConvSpec,
        *,
        bias: bool = True,
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv_d = GateConv(in_channels, hidden, spec, bias=bias)
        self.conv_c = GateConv(hidden, hidden, spec)
        _init_forget_bias(self.conv_d, 0, 1)
        self.forget_bias = forget_bias

    def forward(self, inputs: tuple[Tensor, Tensor], s: Tensor) -> tuple[Tensor, Tensor]:
        d, c_prev = inputs
        f_t = torch.sigmoid(self.conv_d(d) + self.conv_c(c_prev) + self.forget_bias)
        return f_t * c_prev, s


class MIMBlock(nn.Module):
    """The MIM block, Eq. (2): an ST-LSTM whose forget gate is replaced by MIM-N -> MIM-S.

    Input (H_t^{l-1}, the MIM-N input or None at the first step, M_t^{l-1});
    state MIMState (H_{t-1}^l, C_{t-1}^l, MIM-N state, S_{t-1}^l);
    output (H_t^l, M_t^l, D_t^l).
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        spec: ConvSpec,
        *,
        mim_n: bool = True,
        mim_s: bool = True,
    ) -> None:
        super().__init__()
        self.conv_x = GateConv(in_channels, 6 * hidden, spec, bias=True)  # i g i' g' f' o
        self.conv_h = GateConv(hidden, 3 * hidden, spec)  # i g o
        self.conv_m = GateConv(hidden, 3 * hidden, spec)  # i' g' f'
        self.conv_o = GateConv(2 * hidden, hidden, spec)  # W_co * C_t + W_mo * M_t
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)  # W_1x1
        _init_forget_bias(self.conv_x, 4, 6)
        # Without MIM-N the stationary unit reads the raw difference (channels of the layer below).
        self.mimn = MIMN(in_channels, hidden, spec) if mim_n else None
        d_channels = hidden if mim_n else in_channels
        stationary = MIMS if mim_s else ForgetGate
        self.mims = stationary(d_channels, hidden, spec)

    def forward(
        self,
        inputs: tuple[Tensor, Tensor | None, Tensor],
        state: MIMState,
        probe: Probe | None = None,
    ) -> tuple[tuple[Tensor, Tensor, Tensor], MIMState]:
        x, diff, m = inputs
        h, c, n_state, s = state
        if diff is None:  # first step: no previous hidden state, the difference is zero
            diff = torch.zeros_like(x)
        i_x, g_x, i_xm, g_xm, f_xm, o_x = self.conv_x(x).chunk(6, dim=1)
        i_h, g_h, o_h = self.conv_h(h).chunk(3, dim=1)
        i_m, g_m, f_m = self.conv_m(m).chunk(3, dim=1)

        g_t = torch.tanh(g_x + g_h)
        i_t = torch.sigmoid(i_x + i_h)
        d, n_state = self.mimn(diff, n_state) if self.mimn is not None else (diff, n_state)
        retained, s_new = self.mims((d, c), s)  # MIM-S(D_t, C_{t-1}, S_{t-1})
        c_new = retained + i_t * g_t

        g_t_m = torch.tanh(g_xm + g_m)
        i_t_m = torch.sigmoid(i_xm + i_m)
        f_t_m = torch.sigmoid(f_xm + f_m)
        m_new = f_t_m * m + i_t_m * g_t_m

        mem = torch.cat((c_new, m_new), dim=1)
        o_t = torch.sigmoid(o_x + o_h + self.conv_o(mem))
        h_new = o_t * torch.tanh(self.conv_last(mem))
        if probe is not None:
            probe("fake_forget", fake_forget(retained, c))
        return (h_new, m_new, d), MIMState(h_new, c_new, n_state, s_new)


def fake_forget(retained: Tensor, c_prev: Tensor, eps: float = 1e-3) -> Tensor:
    """The paper's "fake forget gate" (Figure 7): MIM-S output divided by C_{t-1}.

    Where |C_{t-1}| < eps the ratio is meaningless and is returned as NaN (callers ignore NaN).
    """
    ratio = retained / c_prev
    return torch.where(c_prev.abs() < eps, torch.full_like(ratio, float("nan")), ratio)
