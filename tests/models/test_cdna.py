"""CDNA: kernel normalisation and compositing against direct loops, the masks, the levels of
the encoder-decoder and the paper's network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mimcast
from mimcast.models.cdna import (
    KERNEL,
    RELU_SHIFT,
    CDNAFeatures,
    composite,
    layer_levels,
    normalised_kernels,
)


def loop_composite(frame: np.ndarray, raw: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The paper's compositing written out: kernel k = relu(w_k - shift) + shift over its own
    sum; image k = kernel k cross-correlated with every channel (zero outside the frame);
    the next frame = mask 0 x frame + sum_k mask k x image k."""
    b, c, h, w = frame.shape
    n_kernels, k = raw.shape[1], raw.shape[2]
    r = k // 2
    out = masks[:, :1] * frame
    for n in range(b):
        for m in range(n_kernels):
            kern = np.maximum(raw[n, m] - RELU_SHIFT, 0) + RELU_SHIFT
            kern = kern / kern.sum()
            image = np.zeros((c, h, w))
            for ch, y, x, i, j in np.ndindex(c, h, w, k, k):
                yy, xx = y + i - r, x + j - r
                if 0 <= yy < h and 0 <= xx < w:
                    image[ch, y, x] += kern[i, j] * frame[n, ch, yy, xx]
            out[n] += masks[n, m + 1] * image
    return out


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("k", [3, KERNEL])
def test_compositing_equals_the_loop(k: int) -> None:
    rng = np.random.default_rng(k)
    frame = rng.random((2, 3, 6, 7))
    raw = rng.normal(size=(2, 4, k, k))  # negative taps too: the shift and the relu matter
    masks = softmax(rng.normal(size=(2, 5, 6, 7)), axis=1)
    kernels = normalised_kernels(torch.from_numpy(raw))
    got = composite(torch.from_numpy(frame), kernels, torch.from_numpy(masks)).numpy()
    np.testing.assert_allclose(got, loop_composite(frame, raw, masks), rtol=0, atol=1e-12)


def test_normalised_kernels_are_positive_and_sum_to_one() -> None:
    raw = torch.randn(3, 10, 5, 5, dtype=torch.float64)
    raw[0, 0] = -1.0  # a kernel with no positive tap: all taps at the shift, a uniform blur
    kernels = normalised_kernels(raw)
    assert (kernels > 0).all()
    torch.testing.assert_close(kernels.sum(dim=(2, 3)), torch.ones(3, 10, dtype=torch.float64))
    torch.testing.assert_close(kernels[0, 0], torch.full((5, 5), 1 / 25, dtype=torch.float64))
    assert normalised_kernels(raw.to(torch.bfloat16)).dtype == torch.float32  # sums in float32


def test_one_hot_masks_pick_the_background_or_a_kernel() -> None:
    """The background mask alone gives the frame read, exactly; a kernel that is a delta one
    row up, with its mask alone, moves the frame one row down."""
    frame = torch.rand(1, 2, 6, 5, dtype=torch.float64)
    raw = torch.full((1, 2, 5, 5), -1.0, dtype=torch.float64)
    raw[0, 1, 1, 2] = 1.0  # kernel 1: tap (1, 2) is the pixel one row above
    kernels = normalised_kernels(raw)
    background = torch.zeros(1, 3, 6, 5, dtype=torch.float64)
    background[:, 0] = 1
    assert torch.equal(composite(frame, kernels, background), frame)
    second = torch.zeros(1, 3, 6, 5, dtype=torch.float64)
    second[:, 2] = 1
    moved = composite(frame, kernels, second)
    torch.testing.assert_close(moved[..., 1:, :], frame[..., :-1, :], rtol=0, atol=1e-10)
    assert moved[..., 0, :].abs().max() < 1e-10


def test_the_head_composites_with_k_plus_one_masks_per_pixel() -> None:
    """Patch 2, K = 3: the mask m of pixel (Y, X) is the head's 1x1 output channel
    (row*p + col)*(K + 1) + m at grid cell (Y//p, X//p) (the fold's order), softmaxed over the
    K + 1; the kernels are the fully connected layer of the flattened bottleneck; the output
    is the loop's composite of the frame read."""
    p, n_kernels = 2, 3
    model = mimcast.create_model(
        "cdna", in_channels=2, height=6, width=8, patch_size=p, hidden=(4, 4, 4, 5),
        filter_size=3, cdna_kernels=n_kernels,
    ).double()  # fmt: skip
    head, rng = model.head, np.random.default_rng(1)
    top, bottom = rng.normal(size=(2, 5, 3, 4)), rng.normal(size=(2, 4, 2, 2))
    frame = rng.random((2, 2, 6, 8))
    folded = model.patches.fold(torch.from_numpy(frame)[:, None])[:, 0]
    features = CDNAFeatures(torch.from_numpy(top), torch.from_numpy(bottom))
    got = model.patches.unfold(head(features, folded)[:, None])[:, 0].detach().numpy()

    weight, bias = (t.detach().numpy() for t in (head.masks.weight[:, :, 0, 0], head.masks.bias))
    logits = np.einsum("oi,bihw->bohw", weight, top) + bias[:, None, None]
    masks = np.zeros((2, n_kernels + 1, 6, 8))
    for b, m, y, x in np.ndindex(*masks.shape):
        masks[b, m, y, x] = logits[b, ((y % p) * p + x % p) * (n_kernels + 1) + m, y // p, x // p]
    fc_w, fc_b = (t.detach().numpy() for t in (head.kernels.weight, head.kernels.bias))
    raw = (bottom.reshape(2, -1) @ fc_w.T + fc_b).reshape(2, n_kernels, KERNEL, KERNEL)
    want = loop_composite(frame, raw, softmax(masks, axis=1))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_every_kernel_counts() -> None:
    """Changing any one of the K kernels changes the prediction: none is dropped (the
    official code's zip drops the last)."""
    model = mimcast.create_model(
        "cdna", in_channels=1, height=8, width=12, patch_size=2, hidden=(4, 4, 4, 4),
        filter_size=3, cdna_kernels=3,
    ).double()  # fmt: skip
    frames = torch.rand(2, 4, 1, 8, 12, dtype=torch.float64)
    with torch.no_grad():
        base = model(frames, context_len=3)
    for kernel in range(3):
        changed = mimcast.build_model(model.config).double()
        changed.load_state_dict(model.state_dict())
        rows = slice(kernel * KERNEL**2, (kernel + 1) * KERNEL**2)
        with torch.no_grad():
            changed.head.kernels.weight[rows] = 0
            changed.head.kernels.bias[rows] = torch.linspace(-1, 1, KERNEL**2)
            diff = changed(frames, context_len=3) - base
        assert diff.abs().max() > 1e-6, kernel


def test_levels_of_the_encoder_decoder() -> None:
    assert layer_levels(7) == [0, 0, 1, 1, 2, 1, 0]  # the paper's seven ConvLSTMs
    assert layer_levels(4) == [0, 0, 1, 0]
    assert layer_levels(10) == [0, 0, 1, 1, 2, 2, 3, 2, 1, 0]
    assert [layer_levels(n) for n in (1, 2, 3)] == [[0], [0, 0], [0, 0, 0]]


def test_the_paper_network() -> None:
    """hidden=(32, 32, 64, 64, 128, 64, 32), patch 2 on 64 x 64 frames: the ConvLSTMs at 1/2,
    1/2, 1/4, 1/4, 1/8, 1/4, 1/2 of the frame, the kernels from the 8 x 8 x 128 bottleneck
    (the paper's fully connected layer, 10 kernels of 5 x 5), skips into the decoder."""
    model = mimcast.create_model(
        "cdna", in_channels=3, height=64, width=64, patch_size=2,
        hidden=(32, 32, 64, 64, 128, 64, 32), filter_size=5, layer_norm=True,
    )  # fmt: skip
    state = model.stack.initial_state(torch.zeros(1, 12, 32, 32))
    assert [tuple(s.h.shape[1:]) for s in state] == [
        (32, 32, 32), (32, 32, 32), (64, 16, 16), (64, 16, 16), (128, 8, 8), (64, 16, 16),
        (32, 32, 32),
    ]  # fmt: skip
    fc = model.head.kernels
    assert (fc.in_features, fc.out_features) == (128 * 8 * 8, 10 * 5 * 5)
    # the ConvLSTMs' inputs: the level below's width, and after a skip its input added
    cells = [cell.conv_x.conv.in_channels for cell in model.stack.layers]
    assert cells == [32, 32, 32, 64, 64, 128, 64 + 32]
    assert model.stack.enc6[0].in_channels == 32 + 32


@pytest.mark.parametrize("hidden", [(3, 4, 5, 6), (3, 3, 4, 4, 5, 4, 3)])
def test_odd_grids_go_down_and_up_with_every_parameter_learning(hidden) -> None:
    """Frames whose grid halves to odd sizes (9 x 11 -> 5 x 6 -> 3 x 3): the transposed
    convolutions come back to the skips' sizes, and every parameter gets a gradient."""
    model = mimcast.create_model(
        "cdna", in_channels=2, height=9, width=11, hidden=hidden, filter_size=3, layer_norm=True
    )
    frames = torch.rand(2, 5, 2, 9, 11)
    preds = model(frames, context_len=2, mask=torch.zeros(1))
    assert preds.shape == (2, 4, 2, 9, 11)
    ((preds - frames[:, 1:]) ** 2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
