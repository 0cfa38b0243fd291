"""FC-LSTM: the model against a NumPy transcription of Srivastava et al.'s peephole LSTM on
flattened frames, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mimcast


def randomised(model: mimcast.Forecaster) -> mimcast.Forecaster:
    """Every parameter random, peepholes and biases included (they start at 0 or 1)."""
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.3, 0.3)
    return model.double()


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def layer_matrices(cell) -> dict[str, np.ndarray]:
    """W_x (4n, D), b (4n,), W_h (4n, n), peepholes (n,) of one layer, gates in order i f c o."""
    return {
        "Wx": cell.conv_x.conv.weight.detach()[:, :, 0, 0].numpy(),
        "b": cell.conv_x.conv.bias.detach().numpy(),
        "Wh": cell.conv_h.conv.weight.detach()[:, :, 0, 0].numpy(),
        **{k: getattr(cell, k).detach().reshape(-1).numpy() for k in ("w_ci", "w_cf", "w_co")},
    }


def lstm_step(m: dict, x: np.ndarray, h: np.ndarray, c: np.ndarray):
    """One step of the paper's LSTM, the equations as written (x, h, c: (B, features))."""
    ax_i, ax_f, ax_c, ax_o = np.split(x @ m["Wx"].T + m["b"], 4, axis=1)
    ah_i, ah_f, ah_c, ah_o = np.split(h @ m["Wh"].T, 4, axis=1)
    i = sigmoid(ax_i + ah_i + m["w_ci"] * c)
    f = sigmoid(ax_f + ah_f + m["w_cf"] * c)
    c_new = f * c + i * np.tanh(ax_c + ah_c)
    o = sigmoid(ax_o + ah_o + m["w_co"] * c_new)
    return o * np.tanh(c_new), c_new


def numpy_fclstm(model: mimcast.Forecaster, frames: np.ndarray) -> np.ndarray:
    """Teacher-forced next-frame predictions of frames 1..T-1 (patch 1: the frame flattened
    in C, H, W order is the input vector; the head is W_out h + b_out)."""
    layers = [layer_matrices(cell) for cell in model.stack.layers]
    w_out, b_out = model.head.weight.detach().numpy(), model.head.bias.detach().numpy()
    b, t = frames.shape[:2]
    state = [(np.zeros((b, len(m["w_ci"]))),) * 2 for m in layers]
    preds = []
    for step in range(t - 1):
        v = frames[:, step].reshape(b, -1)
        for l, m in enumerate(layers):
            v, c = lstm_step(m, v, *state[l])
            state[l] = (v, c)
        preds.append((v @ w_out.T + b_out).reshape(frames.shape[0], *frames.shape[2:]))
    return np.stack(preds, axis=1)


@pytest.mark.parametrize("hidden", [(5,), (6, 4, 3)])
def test_fclstm_is_the_peephole_lstm_on_flattened_frames(hidden) -> None:
    model = randomised(
        mimcast.create_model("fclstm", in_channels=2, height=5, width=7, hidden=hidden)
    )
    frames = torch.rand(3, 6, 2, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        got = model(frames, context_len=5)  # every step reads the true frame
        stepwise = model.set_batched_input_convs(False)(frames, context_len=5)
    want = numpy_fclstm(model, frames.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-9)
    np.testing.assert_allclose(stepwise.numpy(), want, rtol=0, atol=1e-9)


def test_fclstm_reads_the_whole_frame_and_writes_every_pixel() -> None:
    """Fully connected: the first prediction at every pixel depends on every input pixel,
    frames of any size (padded to the patch inside) included."""
    model = randomised(mimcast.create_model("fclstm", in_channels=1, height=7, width=9,
                                            patch_size=2, hidden=(4,)))  # fmt: skip
    frames = torch.rand(1, 2, 1, 7, 9, dtype=torch.float64, requires_grad=True)
    preds = model(frames, context_len=1)
    assert preds.shape == (1, 1, 1, 7, 9)
    for pixel in ((0, 0), (6, 8), (3, 4)):
        (grad,) = torch.autograd.grad(preds[0, 0, 0][pixel], frames, retain_graph=True)
        assert (grad[0, 0].abs() > 0).all()
    assert model.head.out_features == 4 * 4 * 5  # the frame padded to 8 x 10, folded
