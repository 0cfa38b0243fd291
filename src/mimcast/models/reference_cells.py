"""MIM cells with the semantics of the reference implementations (variant="openstl").

The official TensorFlow MIM and its OpenSTL port differ from the paper's equations (see
REFERENCE.md): MIM-N and MIM-S are both one peephole ConvLSTM, and the block's gates share
input terms. These classes reproduce that arithmetic exactly, with parameter layouts that
OpenSTL checkpoints load into, but without the reference's bugs: every sequence starts from a
fresh state and gradients flow through the stationary memory S (no detach, no module state).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mimcast.models.layers import ConvSpec, GateConv, LSTMState, MIMState, Probe, zeros_state
from mimcast.models.mim_cells import ForgetGate, fake_forget

FORGET_BIAS = 1.0  # the reference adds a constant +1 to every forget gate pre-activation


class PeepholeLSTM(nn.Module):
    """The reference's MIM-N / MIM-S unit: a ConvLSTM with Hadamard peepholes.

    i = s(conv_x(x)_i + conv_h(h)_i + w_ci o c)      f = s(conv_x(x)_f + conv_h(h)_f + w_cf o c + 1)
    c' = f o c + i o tanh(conv_x(x)_g + conv_h(h)_g)
    h' = s(conv_x(x)_o + conv_h(h)_o + w_oc o c') o tanh(c')
    `ct_weight` stacks (w_ci, w_cf), `oc_weight` is w_oc: OpenSTL's names and shapes.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        spec: ConvSpec,
    ) -> None:
        super().__init__()
        self.conv_x = GateConv(in_channels, 4 * hidden, spec)  # i g f o
        self.conv_h = GateConv(hidden, 4 * hidden, spec)  # i g f o
        self.ct_weight = nn.Parameter(torch.zeros(2 * hidden, *spec.grid))
        self.oc_weight = nn.Parameter(torch.zeros(hidden, *spec.grid))

    def step(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i_h, g_h, f_h, o_h = self.conv_h(h).chunk(4, dim=1)
        # the peepholes in the states' dtype: under autocast the states stay bf16
        w_ci, w_cf = self.ct_weight.to(c.dtype).chunk(2, dim=0)
        w_oc = self.oc_weight.to(c.dtype)
        i_x, g_x, f_x, o_x = self.conv_x(x).chunk(4, dim=1)
        i_t = torch.sigmoid(i_h + w_ci * c + i_x)
        f_t = torch.sigmoid(f_h + w_cf * c + f_x + FORGET_BIAS)
        c_new = f_t * c + i_t * torch.tanh(g_h + g_x)
        h_new = torch.sigmoid(o_h + o_x + c_new * w_oc) * torch.tanh(c_new)
        return h_new, c_new


class RefMIMN(PeepholeLSTM):
    """Reference MIM-N: x = the input difference, h = its own last output D, c = N."""

    def forward(self, diff: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        d, n = self.step(diff, state.h, state.c)
        return d, LSTMState(d, n)


class RefMIMS(PeepholeLSTM):
    """Reference MIM-S, called as MIMS(x=D_t, h=C_{t-1}, c=S_{t-1})."""

    def forward(self, inputs: tuple[Tensor, Tensor], s: Tensor) -> tuple[Tensor, Tensor]:
        d, c_prev = inputs
        return self.step(d, c_prev, s)


class RefMIMBlock(nn.Module):
    """The reference MIM block.

    Input gates share their input terms between C and M (i = s(i_x + i_t), i' = s(i_x + i_s));
    the output gate is o = s(o_x + o_t + o_s) with o_s from the incoming M;
    H = o o tanh(W_1x1 [C, M]).
    At the first step MIM-N is not run: D is zero and the MIM-N state stays zero.
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
        self.conv_x = GateConv(in_channels, 4 * hidden, spec)  # i g f' o   (conv_x_cc)
        self.conv_h = GateConv(hidden, 3 * hidden, spec)  # i g o        (conv_t_cc)
        self.conv_m = GateConv(hidden, 4 * hidden, spec)  # i' g' f' o   (conv_s_cc)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)
        self.hidden = hidden
        self.mimn = RefMIMN(in_channels, hidden, spec) if mim_n else None
        d_channels = hidden if mim_n else in_channels
        if mim_s:
            self.mims: nn.Module = RefMIMS(d_channels, hidden, spec)
        else:
            self.mims = ForgetGate(d_channels, hidden, spec, bias=False, forget_bias=FORGET_BIAS)

    def forward(
        self,
        inputs: tuple[Tensor, Tensor | None, Tensor],
        state: MIMState,
        probe: Probe | None = None,
    ) -> tuple[tuple[Tensor, Tensor, Tensor], MIMState]:
        x, diff, m = inputs
        h, c, n_state, s = state
        i_x, g_x, f_x, o_x = self.conv_x(x).chunk(4, dim=1)
        i_t, g_t, o_t = self.conv_h(h).chunk(3, dim=1)
        i_s, g_s, f_s, o_s = self.conv_m(m).chunk(4, dim=1)

        i = torch.sigmoid(i_x + i_t)
        i_m = torch.sigmoid(i_x + i_s)
        g = torch.tanh(g_x + g_t)
        g_m = torch.tanh(g_x + g_s)
        f_m = torch.sigmoid(f_x + f_s + FORGET_BIAS)
        o = torch.sigmoid(o_x + o_t + o_s)
        m_new = f_m * m + i_m * g_m

        if diff is None:  # first step: the reference discards MIM-N's output and feeds D = 0
            d = zeros_state(x, self.hidden) if self.mimn is not None else torch.zeros_like(x)
        elif self.mimn is not None:
            d, n_state = self.mimn(diff, n_state)
        else:
            d = diff
        retained, s_new = self.mims((d, c), s)
        c_new = retained + i * g

        h_new = o * torch.tanh(self.conv_last(torch.cat((c_new, m_new), dim=1)))
        if probe is not None:
            probe("fake_forget", fake_forget(retained, c))
        return (h_new, m_new, d), MIMState(h_new, c_new, n_state, s_new)


class RefCausalLSTMCell(nn.Module):
    """PredRNN++'s Causal LSTM as the reference code computes it (its TF code, OpenSTL's port).

    It differs from the paper's Eq. 1 in three places: g' reads no M^{l-1} term (only X_t and
    C_t); the output gate also reads H_{t-1}, o = tanh(o_x + o_h + o_c + o_m); and there are no
    biases, a constant +1 on both forget gates instead. The layouts are OpenSTL's: conv_x
    (i f g i' f' g' o), conv_h (i f g o), conv_c (i f g), conv_m (i' f' and W_3), conv_c2m
    (i' g' f' o from C_t), conv_om (o from M_t); OpenSTL's conv_o is never used and not built.
    """

    def __init__(
        self, in_channels: int, hidden: int, spec: ConvSpec, *, bias: bool = False
    ) -> None:
        super().__init__()
        self.conv_x = GateConv(in_channels, 7 * hidden, spec, bias=bias)
        self.conv_h = GateConv(hidden, 4 * hidden, spec)
        self.conv_c = GateConv(hidden, 3 * hidden, spec)
        self.conv_m = GateConv(hidden, 3 * hidden, spec)
        self.conv_c2m = GateConv(hidden, 4 * hidden, spec)
        self.conv_om = GateConv(hidden, hidden, spec)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)

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
        i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = gx.chunk(7, dim=1)
        i_h, f_h, g_h, o_h = self.conv_h(h).chunk(4, dim=1)
        i_c, f_c, g_c = self.conv_c(c).chunk(3, dim=1)
        i_m, f_m, w3_m = self.conv_m(m).chunk(3, dim=1)

        i_t = torch.sigmoid(i_x + i_h + i_c)
        f_t = torch.sigmoid(f_x + f_h + f_c + FORGET_BIAS)
        g_t = torch.tanh(g_x + g_h + g_c)
        c_new = f_t * c + i_t * g_t

        i_cm, g_cm, f_cm, o_c = self.conv_c2m(c_new).chunk(4, dim=1)
        i_t_m = torch.sigmoid(i_xm + i_m + i_cm)
        f_t_m = torch.sigmoid(f_xm + f_m + f_cm + FORGET_BIAS)
        g_t_m = torch.tanh(g_xm + g_cm)
        m_new = f_t_m * torch.tanh(w3_m) + i_t_m * g_t_m

        o_t = torch.tanh(o_x + o_h + o_c + self.conv_om(m_new))
        h_new = o_t * torch.tanh(self.conv_last(torch.cat((c_new, m_new), dim=1)))
        if probe is not None:
            probe("forget", f_t)
        return (h_new, m_new), LSTMState(h_new, c_new)
