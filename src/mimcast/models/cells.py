"""LSTM-type cells written as their papers' equations: ConvLSTM, the ST-LSTM of PredRNN (and
MIM's first layer), PredRNN++'s Causal LSTM and gradient highway unit.

Each cell is a small module whose forward takes (input, state) and returns (output, new_state);
no state is ever kept on the module. Names follow the papers: i/f/g/o are the input, forget,
modulation and output gates, primed names (suffix `_m`) the gates of the spatiotemporal memory M.
The `probe` argument is an opt-in hook for reading gate activations (Figure 7); it is None, and
costs nothing, unless the caller asks for it. MIM's own units are in mim_cells.py.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mimcast.models.layers import ConvSpec, GateConv, LSTMState, Probe, init_forget_bias


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
        init_forget_bias(self.conv_x, 1, 4)
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
        if self.peephole:  # in the states' dtype, so that they stay bf16 under autocast
            w_ci, w_cf, w_co = (w.to(c.dtype) for w in (self.w_ci, self.w_cf, self.w_co))
            i_t = torch.sigmoid(i_x + i_h + w_ci * c)
            f_t = torch.sigmoid(f_x + f_h + w_cf * c)
        else:
            i_t = torch.sigmoid(i_x + i_h)
            f_t = torch.sigmoid(f_x + f_h)
        g_t = torch.tanh(g_x + g_h)
        c_new = f_t * c + i_t * g_t
        o_pre = o_x + o_h + w_co * c_new if self.peephole else o_x + o_h
        h_new = torch.sigmoid(o_pre) * torch.tanh(c_new)
        if probe is not None:
            probe("forget", f_t)
        return h_new, LSTMState(h_new, c_new)


class STLSTMCell(nn.Module):
    """Spatiotemporal LSTM, Eq. (1): the PredRNN cell and the first layer of MIM.

    Input (X_t, M_t^{l-1}), state (H_{t-1}^l, C_{t-1}^l); output (H_t^l, M_t^l), and with
    `increments` also the memory increments (dC_t, dM_t) = (i o g, i' o g') that PredRNN-V2's
    decoupling loss reads (Wang et al., TPAMI 2022, Eq. 6).
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
        increments: bool = False,
    ) -> None:
        super().__init__()
        self.conv_x = GateConv(in_channels, 7 * hidden, spec, bias=bias)  # i f g i' f' g' o
        self.conv_h = GateConv(hidden, 4 * hidden, spec)  # i f g o
        self.conv_m = GateConv(hidden, 3 * hidden, spec)  # i' f' g'
        self.conv_o = GateConv(2 * hidden, hidden, spec)  # W_co * C_t + W_mo * M_t
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)  # W_1x1
        init_forget_bias(self.conv_x, 1, 7)
        init_forget_bias(self.conv_x, 4, 7)
        self.forget_bias = forget_bias
        self.increments = increments

    def forward(
        self,
        inputs: tuple[Tensor, Tensor],
        state: LSTMState,
        probe: Probe | None = None,
        x_gates: Tensor | None = None,
    ) -> tuple[tuple[Tensor, ...], LSTMState]:
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
        delta_c = i_t * g_t
        c_new = f_t * c + delta_c

        i_t_m = torch.sigmoid(i_xm + i_m)
        f_t_m = torch.sigmoid(f_xm + f_m + self.forget_bias)
        g_t_m = torch.tanh(g_xm + g_m)
        delta_m = i_t_m * g_t_m
        m_new = f_t_m * m + delta_m

        mem = torch.cat((c_new, m_new), dim=1)
        o_t = torch.sigmoid(o_x + o_h + self.conv_o(mem))
        h_new = o_t * torch.tanh(self.conv_last(mem))
        if probe is not None:
            probe("forget", f_t)
        out = (h_new, m_new, delta_c, delta_m) if self.increments else (h_new, m_new)
        return out, LSTMState(h_new, c_new)


class CausalLSTMCell(nn.Module):
    """PredRNN++'s Causal LSTM (Wang et al., ICML 2018, Eq. 1): the temporal memory C first, then
    the spatial memory M from C_t, in a cascade.

    (g, i, f) = (tanh, s, s)(W_1 * [X_t, H_{t-1}, C_{t-1}])    C_t = f o C_{t-1} + i o g
    (g', i', f') = (tanh, s, s)(W_2 * [X_t, C_t, M^{l-1}_t])
    M_t = f' o tanh(W_3 * M^{l-1}_t) + i' o g'
    o = tanh(W_4 * [X_t, C_t, M_t])                           H_t = o o tanh(W_5 * [C_t, M_t])
    (W_5 is 1x1.) Input (X_t, M^{l-1}_t), state (H_{t-1}, C_{t-1}); output (H_t, M_t).
    """

    def __init__(self, in_channels: int, hidden: int, spec: ConvSpec, *, bias: bool = True) -> None:
        super().__init__()
        self.conv_x = GateConv(in_channels, 7 * hidden, spec, bias=bias)  # g i f g' i' f' o
        self.conv_h = GateConv(hidden, 3 * hidden, spec)  # g i f
        self.conv_c = GateConv(hidden, 3 * hidden, spec)  # g i f  (C_{t-1})
        self.conv_m = GateConv(hidden, 4 * hidden, spec)  # g' i' f' and W_3  (M^{l-1}_t)
        self.conv_c_new = GateConv(hidden, 4 * hidden, spec)  # g' i' f' o  (C_t)
        self.conv_m_new = GateConv(hidden, hidden, spec)  # o  (M_t)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)  # W_5
        init_forget_bias(self.conv_x, 2, 7)
        init_forget_bias(self.conv_x, 5, 7)

    def forward(
        self,
        inputs: tuple[Tensor, Tensor],
        state: LSTMState,
        probe: Probe | None = None,
        x_gates: Tensor | None = None,
    ) -> tuple[tuple[Tensor, Tensor], LSTMState]:
        x, m = inputs
        h, c = state
        gx = self.conv_x(x) if x_gates is None else x_gates
        g_x, i_x, f_x, g_xm, i_xm, f_xm, o_x = gx.chunk(7, dim=1)
        g_h, i_h, f_h = self.conv_h(h).chunk(3, dim=1)
        g_c, i_c, f_c = self.conv_c(c).chunk(3, dim=1)
        g_m, i_m, f_m, w3_m = self.conv_m(m).chunk(4, dim=1)

        g_t = torch.tanh(g_x + g_h + g_c)
        i_t = torch.sigmoid(i_x + i_h + i_c)
        f_t = torch.sigmoid(f_x + f_h + f_c)
        c_new = f_t * c + i_t * g_t

        g_cm, i_cm, f_cm, o_c = self.conv_c_new(c_new).chunk(4, dim=1)
        g_t_m = torch.tanh(g_xm + g_cm + g_m)
        i_t_m = torch.sigmoid(i_xm + i_cm + i_m)
        f_t_m = torch.sigmoid(f_xm + f_cm + f_m)
        m_new = f_t_m * torch.tanh(w3_m) + i_t_m * g_t_m

        o_t = torch.tanh(o_x + o_c + self.conv_m_new(m_new))
        h_new = o_t * torch.tanh(self.conv_last(torch.cat((c_new, m_new), dim=1)))
        if probe is not None:
            probe("forget", f_t)
        return (h_new, m_new), LSTMState(h_new, c_new)


class GradientHighway(nn.Module):
    """PredRNN++'s gradient highway unit (Eq. 2): a short path for gradients through time.

    P_t = tanh(W_px * X_t + W_pz * Z_{t-1})      S_t = s(W_sx * X_t + W_sz * Z_{t-1})
    Z_t = S_t o P_t + (1 - S_t) o Z_{t-1}
    """

    def __init__(self, in_channels: int, hidden: int, spec: ConvSpec, *, bias: bool = True) -> None:
        super().__init__()
        self.conv_x = GateConv(in_channels, 2 * hidden, spec, bias=bias)  # p s
        self.conv_z = GateConv(hidden, 2 * hidden, spec)  # p s

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        p_x, s_x = self.conv_x(x).chunk(2, dim=1)
        p_z, s_z = self.conv_z(z).chunk(2, dim=1)
        p_t = torch.tanh(p_x + p_z)
        s_t = torch.sigmoid(s_x + s_z)
        return s_t * p_t + (1 - s_t) * z
