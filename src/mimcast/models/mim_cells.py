"""MIM's own units written as the paper's equations: MIM-N (Eq. 3), MIM-S (Eq. 4), the MIM block
(Eq. 2), and the "without MIM-S" ablation's forget gate.

Equation numbers refer to Wang et al., "Memory In Memory", CVPR 2019. The reference code's
arithmetic (variant="openstl") is in reference_cells.py.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mimcast.models.layers import (
    ConvSpec,
    GateConv,
    LSTMState,
    MIMState,
    Probe,
    init_forget_bias,
)


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
        init_forget_bias(self.conv_x, 2, 4)

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
        init_forget_bias(self.conv_d, 2, 4)

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
        init_forget_bias(self.conv_d, 0, 1)
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
        init_forget_bias(self.conv_x, 4, 6)
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
