"""The paper variant's cells against line-by-line transcriptions of the paper's equations.

Every parameter is randomised (biases and peepholes included), the norm is off (the equations
have none), and the transcriptions use plain F.conv2d on weight slices, one line per equation.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import sigmoid, tanh

from mimcast.models.cells import CausalLSTMCell, ConvLSTMCell, GradientHighway, STLSTMCell
from mimcast.models.config import ModelConfig
from mimcast.models.layers import ConvSpec, LSTMState, MIMState
from mimcast.models.mim import build_mim
from mimcast.models.mim_cells import MIMN, MIMS, ForgetGate, MIMBlock

B, CIN, C, H, W, K = 2, 3, 4, 6, 5, 3
GRID = (H, W)
SPEC = ConvSpec(K, GRID)


def randomise(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    return module.double()


def rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


def gates(gate_conv, n: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(weight, bias) of each of the n gates produced by one GateConv."""
    w, b = gate_conv.conv.weight, gate_conv.conv.bias
    ws = w.chunk(n, dim=0)
    bs = b.chunk(n, dim=0) if b is not None else [None] * n
    return list(zip(ws, bs))


def conv(wb: tuple[torch.Tensor, torch.Tensor | None], x: torch.Tensor) -> torch.Tensor:
    w, b = wb
    return F.conv2d(x, w, b, padding=w.shape[-1] // 2)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_convlstm_cell_is_shi_et_al() -> None:
    cell = randomise(ConvLSTMCell(CIN, C, SPEC, bias=True, peephole=True))
    X, H_, C_ = rand(B, CIN, H, W), rand(B, C, H, W), rand(B, C, H, W)
    (W_xi, W_xf, W_xc, W_xo), (W_hi, W_hf, W_hc, W_ho) = (
        gates(cell.conv_x, 4),
        gates(cell.conv_h, 4),
    )
    i = sigmoid(conv(W_xi, X) + conv(W_hi, H_) + cell.w_ci * C_)
    f = sigmoid(conv(W_xf, X) + conv(W_hf, H_) + cell.w_cf * C_)
    C_t = f * C_ + i * tanh(conv(W_xc, X) + conv(W_hc, H_))
    o = sigmoid(conv(W_xo, X) + conv(W_ho, H_) + cell.w_co * C_t)
    H_t = o * tanh(C_t)

    out, state = cell(X, LSTMState(H_, C_))
    close(out, H_t)
    close(state.c, C_t)


def st_lstm_equation_1(cell: STLSTMCell, X, H_, C_, M):
    """Eq. 1 of the MIM paper (PredRNN's ST-LSTM): (H_t, C_t, M_t)."""
    W_xi, W_xf, W_xg, W_xi_, W_xf_, W_xg_, W_xo = gates(cell.conv_x, 7)
    W_hi, W_hf, W_hg, W_ho = gates(cell.conv_h, 4)
    W_mi, W_mf, W_mg = gates(cell.conv_m, 3)
    (W_o_cm,) = gates(cell.conv_o, 1)  # W_co * C_t + W_mo * M_t, one conv over [C_t, M_t]

    g = tanh(conv(W_xg, X) + conv(W_hg, H_))
    i = sigmoid(conv(W_xi, X) + conv(W_hi, H_))
    f = sigmoid(conv(W_xf, X) + conv(W_hf, H_))
    C_t = f * C_ + i * g
    g_ = tanh(conv(W_xg_, X) + conv(W_mg, M))
    i_ = sigmoid(conv(W_xi_, X) + conv(W_mi, M))
    f_ = sigmoid(conv(W_xf_, X) + conv(W_mf, M))
    M_t = f_ * M + i_ * g_
    o = sigmoid(conv(W_xo, X) + conv(W_ho, H_) + conv(W_o_cm, torch.cat([C_t, M_t], 1)))
    H_t = o * tanh(F.conv2d(torch.cat([C_t, M_t], 1), cell.conv_last.weight))
    return H_t, C_t, M_t


def test_st_lstm_cell_is_equation_1() -> None:
    cell = randomise(STLSTMCell(CIN, C, SPEC, bias=True))
    X, H_, C_, M = rand(B, CIN, H, W), rand(B, C, H, W), rand(B, C, H, W), rand(B, C, H, W)
    H_t, C_t, M_t = st_lstm_equation_1(cell, X, H_, C_, M)
    (out, m_out), state = cell((X, M), LSTMState(H_, C_))
    close(out, H_t)
    close(m_out, M_t)
    close(state.c, C_t)


def test_st_lstm_v2_cell_returns_the_memory_increments() -> None:
    """PredRNN-V2 (TPAMI 2022, Eq. 6): dC_t = i o g, dM_t = i' o g', the same cell otherwise."""
    plain = randomise(STLSTMCell(CIN, C, SPEC, bias=True))
    v2 = STLSTMCell(CIN, C, SPEC, bias=True, increments=True).double()
    v2.load_state_dict(plain.state_dict())
    X, H_, C_, M = rand(B, CIN, H, W), rand(B, C, H, W), rand(B, C, H, W), rand(B, C, H, W)
    W_xi, W_xf, W_xg, W_xi_, W_xf_, W_xg_, _ = gates(v2.conv_x, 7)
    W_hi, W_hf, W_hg, _ = gates(v2.conv_h, 4)
    W_mi, W_mf, W_mg = gates(v2.conv_m, 3)
    dC = sigmoid(conv(W_xi, X) + conv(W_hi, H_)) * tanh(conv(W_xg, X) + conv(W_hg, H_))
    dM = sigmoid(conv(W_xi_, X) + conv(W_mi, M)) * tanh(conv(W_xg_, X) + conv(W_mg, M))
    f = sigmoid(conv(W_xf, X) + conv(W_hf, H_))
    f_ = sigmoid(conv(W_xf_, X) + conv(W_mf, M))

    (h, m, delta_c, delta_m), state = v2((X, M), LSTMState(H_, C_))
    (h1, m1), state1 = plain((X, M), LSTMState(H_, C_))
    close(delta_c, dC)
    close(delta_m, dM)
    close(state.c, f * C_ + dC)
    close(m, f_ * M + dM)
    close(h, h1)
    close(m, m1)


def test_causal_lstm_cell_is_predrnnpp_equation_1() -> None:
    """PredRNN++ (ICML 2018), Eq. 1: C first, then M from C_t; o = tanh(W_4 * [X, C_t, M_t])."""
    cell = randomise(CausalLSTMCell(CIN, C, SPEC, bias=True))
    X, H_, C_, M = rand(B, CIN, H, W), rand(B, C, H, W), rand(B, C, H, W), rand(B, C, H, W)
    W_xg, W_xi, W_xf, W_xg_, W_xi_, W_xf_, W_xo = gates(cell.conv_x, 7)  # W_1, W_2, W_4 on X
    W_hg, W_hi, W_hf = gates(cell.conv_h, 3)  # W_1 on H_{t-1}
    W_cg, W_ci, W_cf = gates(cell.conv_c, 3)  # W_1 on C_{t-1}
    W_mg, W_mi, W_mf, W_3 = gates(cell.conv_m, 4)  # W_2 on M^{l-1}_t, and W_3
    W_Cg, W_Ci, W_Cf, W_Co = gates(cell.conv_c_new, 4)  # W_2 and W_4 on C_t
    (W_Mo,) = gates(cell.conv_m_new, 1)  # W_4 on M_t

    g = tanh(conv(W_xg, X) + conv(W_hg, H_) + conv(W_cg, C_))
    i = sigmoid(conv(W_xi, X) + conv(W_hi, H_) + conv(W_ci, C_))
    f = sigmoid(conv(W_xf, X) + conv(W_hf, H_) + conv(W_cf, C_))
    C_t = f * C_ + i * g
    g_ = tanh(conv(W_xg_, X) + conv(W_Cg, C_t) + conv(W_mg, M))
    i_ = sigmoid(conv(W_xi_, X) + conv(W_Ci, C_t) + conv(W_mi, M))
    f_ = sigmoid(conv(W_xf_, X) + conv(W_Cf, C_t) + conv(W_mf, M))
    M_t = f_ * tanh(conv(W_3, M)) + i_ * g_
    o = tanh(conv(W_xo, X) + conv(W_Co, C_t) + conv(W_Mo, M_t))
    H_t = o * tanh(F.conv2d(torch.cat([C_t, M_t], 1), cell.conv_last.weight))  # W_5, 1x1

    (out, m_out), state = cell((X, M), LSTMState(H_, C_))
    close(out, H_t)
    close(m_out, M_t)
    close(state.c, C_t)


def test_gradient_highway_is_predrnnpp_equation_2() -> None:
    unit = randomise(GradientHighway(C, C, SPEC, bias=True))
    X, Z = rand(B, C, H, W), rand(B, C, H, W)
    (W_px, W_sx), (W_pz, W_sz) = gates(unit.conv_x, 2), gates(unit.conv_z, 2)
    P = tanh(conv(W_px, X) + conv(W_pz, Z))
    S = sigmoid(conv(W_sx, X) + conv(W_sz, Z))
    close(unit(X, Z), S * P + (1 - S) * Z)


def mim_n_equation_3(unit: MIMN, diff, N):
    (W_xi, W_xg, W_xf, W_xo), (W_ni, W_ng, W_nf) = gates(unit.conv_x, 4), gates(unit.conv_n, 3)
    (W_no,) = gates(unit.conv_o, 1)
    g = tanh(conv(W_xg, diff) + conv(W_ng, N))
    i = sigmoid(conv(W_xi, diff) + conv(W_ni, N))
    f = sigmoid(conv(W_xf, diff) + conv(W_nf, N))
    N_t = f * N + i * g
    o = sigmoid(conv(W_xo, diff) + conv(W_no, N_t))
    return o * tanh(N_t), N_t


def mim_s_equation_4(unit: MIMS, D, C_prev, S):
    (W_di, W_dg, W_df, W_do), (W_ci, W_cg, W_cf, W_co) = (
        gates(unit.conv_d, 4),
        gates(unit.conv_c, 4),
    )
    (W_so,) = gates(unit.conv_o, 1)
    g = tanh(conv(W_dg, D) + conv(W_cg, C_prev))
    i = sigmoid(conv(W_di, D) + conv(W_ci, C_prev))
    f = sigmoid(conv(W_df, D) + conv(W_cf, C_prev))
    S_t = f * S + i * g
    o = sigmoid(conv(W_do, D) + conv(W_co, C_prev) + conv(W_so, S_t))
    return o * tanh(S_t), S_t


def test_mim_n_is_equation_3() -> None:
    unit = randomise(MIMN(CIN, C, SPEC))
    H_t, H_prev, N = rand(B, CIN, H, W), rand(B, CIN, H, W), rand(B, C, H, W)
    D_expected, N_expected = mim_n_equation_3(unit, H_t - H_prev, N)
    D, state = unit(H_t - H_prev, LSTMState(rand(B, C, H, W), N))
    close(D, D_expected)
    close(state.c, N_expected)


def test_mim_s_is_equation_4() -> None:
    unit = randomise(MIMS(C, C, SPEC))
    D, C_prev, S = rand(B, C, H, W), rand(B, C, H, W), rand(B, C, H, W)
    out_expected, S_expected = mim_s_equation_4(unit, D, C_prev, S)
    out, S_t = unit((D, C_prev), S)
    close(out, out_expected)
    close(S_t, S_expected)


def mim_block_equation_2(block: MIMBlock, X, diff, H_, C_, M, N, S):
    """Eq. 2 (with MIM-N, Eq. 3, and MIM-S, Eq. 4, or their ablations):
    (H_t, C_t, M_t, D_t, N_t, S_t) from H_t^{l-1} = X and its difference in time `diff`."""
    W_xi, W_xg, W_xi_, W_xg_, W_xf_, W_xo = gates(block.conv_x, 6)
    W_hi, W_hg, W_ho = gates(block.conv_h, 3)
    W_mi, W_mg, W_mf = gates(block.conv_m, 3)
    (W_o_cm,) = gates(block.conv_o, 1)

    g = tanh(conv(W_xg, X) + conv(W_hg, H_))
    i = sigmoid(conv(W_xi, X) + conv(W_hi, H_))
    if block.mimn is not None:
        D, N_t = mim_n_equation_3(block.mimn, diff, N)
    else:  # ablation: MIM-S reads the raw difference
        D, N_t = diff, N
    if isinstance(block.mims, MIMS):
        retained, S_t = mim_s_equation_4(block.mims, D, C_, S)
    else:  # ablation: an ordinary forget gate from D and C_{t-1}
        (W_df,), (W_cf,) = gates(block.mims.conv_d, 1), gates(block.mims.conv_c, 1)
        retained, S_t = sigmoid(conv(W_df, D) + conv(W_cf, C_)) * C_, S
    C_t = retained + i * g
    g_ = tanh(conv(W_xg_, X) + conv(W_mg, M))
    i_ = sigmoid(conv(W_xi_, X) + conv(W_mi, M))
    f_ = sigmoid(conv(W_xf_, X) + conv(W_mf, M))
    M_t = f_ * M + i_ * g_
    o = sigmoid(conv(W_xo, X) + conv(W_ho, H_) + conv(W_o_cm, torch.cat([C_t, M_t], 1)))
    H_t = o * tanh(F.conv2d(torch.cat([C_t, M_t], 1), block.conv_last.weight))
    return H_t, C_t, M_t, D, N_t, S_t


@pytest.mark.parametrize("mim_n", (True, False))
@pytest.mark.parametrize("mim_s", (True, False))
def test_mim_block_is_equation_2(mim_n: bool, mim_s: bool) -> None:
    block = randomise(MIMBlock(CIN, C, SPEC, mim_n=mim_n, mim_s=mim_s))
    X, X_prev = rand(B, CIN, H, W), rand(B, CIN, H, W)  # H_t^{l-1}, H_{t-1}^{l-1}
    H_, C_, M, N, S = (rand(B, C, H, W) for _ in range(5))
    H_t, C_t, M_t, D, N_t, S_t = mim_block_equation_2(block, X, X - X_prev, H_, C_, M, N, S)
    (out, m_out, d_out), state = block(
        (X, X - X_prev, M), MIMState(H_, C_, LSTMState(rand(B, C, H, W), N), S)
    )
    close(out, H_t)
    close(m_out, M_t)
    close(d_out, D)
    close(state.c, C_t)
    close(state.n.c, N_t)
    close(state.s, S_t)


def test_a_three_layer_paper_mim_is_equations_1_to_4_in_time() -> None:
    """The whole paper-variant stack, 3 layers over 4 steps, against the equations composed by
    hand: layer 1 Eq. 1 with M from the top layer of the step before (the zigzag), layers 2-3
    Eq. 2 fed H_t^{l-1} and H_t^{l-1} - H_{t-1}^{l-1} (zero at the first step), M passed up."""
    config = ModelConfig(name="mim", in_channels=CIN, height=H, width=W, patch_size=1,
                         hidden=(C, C, C), filter_size=K, variant="paper")  # fmt: skip
    stack = randomise(build_mim(config))
    zero = torch.zeros(B, C, H, W, dtype=torch.float64)
    hs, cs = [zero] * 3, [zero] * 3
    ns, ss, m_top = [zero] * 3, [zero] * 3, zero
    state = None
    for t in range(4):
        x = rand(B, CIN, H, W)
        h_prev = list(hs)
        hs[0], cs[0], m = st_lstm_equation_1(stack.layers[0], x, h_prev[0], cs[0], m_top)
        for l in (1, 2):
            diff = hs[l - 1] - h_prev[l - 1] if t else zero  # no H_{t-1} at the first step
            hs[l], cs[l], m, _, ns[l], ss[l] = mim_block_equation_2(
                stack.layers[l], hs[l - 1], diff, h_prev[l], cs[l], m, ns[l], ss[l]
            )
        m_top = m
        out, state = stack(x, state)
        close(out, hs[2])
        close(state.m, m_top)


def test_mim_block_first_step_feeds_a_zero_difference() -> None:
    block = randomise(MIMBlock(CIN, C, SPEC))
    X, M = rand(B, CIN, H, W), rand(B, C, H, W)
    zeros = torch.zeros(B, C, H, W, dtype=torch.float64)
    state = MIMState(zeros, zeros, LSTMState(zeros, zeros), zeros)
    first = block((X, None, M), state)
    explicit = block((X, torch.zeros(B, CIN, H, W, dtype=torch.float64), M), state)
    close(first[0][0], explicit[0][0])


def test_forget_gate_ablation_unit_alone() -> None:
    unit = randomise(ForgetGate(C, C, SPEC))
    D, C_prev, S = rand(B, C, H, W), rand(B, C, H, W), rand(B, C, H, W)
    (W_df,), (W_cf,) = gates(unit.conv_d, 1), gates(unit.conv_c, 1)
    retained, s_out = unit((D, C_prev), S)
    close(retained, sigmoid(conv(W_df, D) + conv(W_cf, C_prev)) * C_prev)
    assert s_out is S


def _forget_cases():
    """(cell, its gate convolution, indices of its forget gates, number of gates)."""
    return [
        (lambda s: ConvLSTMCell(CIN, C, s), "conv_x", (1,), 4),
        (lambda s: STLSTMCell(CIN, C, s), "conv_x", (1, 4), 7),
        (lambda s: CausalLSTMCell(CIN, C, s), "conv_x", (2, 5), 7),
        (lambda s: MIMN(CIN, C, s), "conv_x", (2,), 4),
        (lambda s: MIMS(C, C, s), "conv_d", (2,), 4),
        (lambda s: ForgetGate(C, C, s), "conv_d", (0,), 1),
        (lambda s: MIMBlock(CIN, C, s), "conv_x", (4,), 6),
    ]


@pytest.mark.parametrize("norm", ["none", "group"])
@pytest.mark.parametrize("case", range(7))
def test_forget_gates_start_open_with_and_without_layer_norm(case: int, norm: str) -> None:
    """At initialisation the forget pre-activations average +1 and the others 0 (the +1 is
    added after the norm: before it, the norm mixed it away)."""
    make, name, forget, n = _forget_cases()[case]
    torch.manual_seed(0)
    cell = make(ConvSpec(K, (16, 16), norm))
    gate_conv = getattr(cell, name)
    x = torch.randn(64, gate_conv.conv.in_channels, 16, 16)
    with torch.no_grad():
        pre = gate_conv(x).chunk(n, dim=1)
    for k, p in enumerate(pre):
        assert p.mean().item() == pytest.approx(1.0 if k in forget else 0.0, abs=0.1), k


@pytest.mark.parametrize("kind", ["paper", "openstl"])
def test_which_difference_each_mim_layer_receives(kind) -> None:
    """Eq. 2-3: block l's MIM-N reads H_t^{l-1} - H_{t-1}^{l-1}, the layer below's hidden state
    differenced in time, at every layer (paper); the reference code gives layers >= 3 the MIM-N
    output D of the layer below instead (openstl). Zero (None) at the first step."""
    config = ModelConfig(name="mim", in_channels=1, height=8, width=8, patch_size=1,
                         hidden=(3, 3, 3, 3), filter_size=3, variant=kind)  # fmt: skip
    stack = build_mim(config).double()
    seen = {l: [] for l in range(4)}  # per layer, per step: (input diff, output h, output d)

    def record(l):
        def hook(module, args, output):
            (h, *rest), _ = output
            diff = args[0][1] if l else None
            seen[l].append((diff, h.detach(), rest[1].detach() if l else None))

        return hook

    for l, layer in enumerate(stack.layers):
        layer.register_forward_hook(record(l))
    state = None
    with torch.no_grad():
        for _ in range(3):
            _, state = stack(torch.rand(2, 1, 8, 8, dtype=torch.float64), state)
    for l in (1, 2, 3):
        assert seen[l][0][0] is None  # the first step: no difference yet
        for t in (1, 2):
            diff = seen[l][t][0]
            if kind == "openstl" and l >= 2:
                want = seen[l - 1][t][2]  # D_t^{l-1}
            else:
                want = seen[l - 1][t][1] - seen[l - 1][t - 1][1]  # H_t^{l-1} - H_{t-1}^{l-1}
            torch.testing.assert_close(diff, want, rtol=0, atol=0)
