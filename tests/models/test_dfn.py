"""DFN: the dynamic filtering layer against a direct loop, the filters' layout through the
patch folding, and the paper's network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mimcast
from mimcast.models.dfn import filter_pixels


def loop_filtering(frame: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """out[b, c, y, x] = sum_{i,j} filters[b, c, i*k+j, y, x] * frame[b, c, y+i-r, x+j-r],
    zero outside the frame: the paper's Eq. for one pixel, written out."""
    b, c, h, w = frame.shape
    k = int(round(filters.shape[2] ** 0.5))
    r = k // 2
    out = np.zeros_like(frame)
    for n, ch, y, x in np.ndindex(b, c, h, w):
        for i in range(k):
            for j in range(k):
                yy, xx = y + i - r, x + j - r
                if 0 <= yy < h and 0 <= xx < w:
                    out[n, ch, y, x] += filters[n, ch, i * k + j, y, x] * frame[n, ch, yy, xx]
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_filtering_equals_the_loop(k: int) -> None:
    rng = np.random.default_rng(k)
    frame = rng.random((2, 3, 7, 9))
    logits = rng.normal(size=(2, 3, k * k, 7, 9))
    filters = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    got = filter_pixels(torch.from_numpy(frame), torch.from_numpy(filters)).numpy()
    np.testing.assert_allclose(got, loop_filtering(frame, filters), rtol=0, atol=1e-12)


def test_the_head_generates_one_softmax_filter_per_pixel_and_channel() -> None:
    """Patch 2, 2 channels: the filter of pixel (Y, X), channel c, tap n is the head's 1x1
    output channel (row*p + col)*C*k*k + c*k*k + n at grid cell (Y//p, X//p), row = Y % p,
    col = X % p (the fold's order), softmaxed over n; the frame read is unfolded the same way."""
    p, c, k = 2, 2, 3
    model = mimcast.create_model(
        "dfn", in_channels=c, height=6, width=8, patch_size=p, hidden=(5, 4), filter_size=3,
        dfn_filter_size=k,
    ).double()  # fmt: skip
    head = model.head
    rng = np.random.default_rng(0)
    h = rng.normal(size=(2, 4, 3, 4))
    frame = rng.random((2, c, 6, 8))
    folded = model.patches.fold(torch.from_numpy(frame)[:, None])[:, 0]
    got = model.patches.unfold(head(torch.from_numpy(h), folded)[:, None])[:, 0].detach().numpy()

    w = head.filters.weight.detach().numpy()[:, :, 0, 0]
    logits = np.einsum("oi,bihw->bohw", w, h) + head.filters.bias.detach().numpy()[:, None, None]
    filters = np.zeros((2, c, k * k, 6, 8))
    for b, ch, n, y, x in np.ndindex(*filters.shape):
        channel = ((y % p) * p + x % p) * c * k * k + ch * k * k + n
        filters[b, ch, n, y, x] = logits[b, channel, y // p, x // p]
    filters = np.exp(filters) / np.exp(filters).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(got, loop_filtering(frame, filters), rtol=0, atol=1e-12)


def test_a_filter_peaked_on_a_neighbour_moves_the_frame() -> None:
    """All weight on tap (i, j) = (1, 2) of a 3x3 filter: every pixel takes the value one column
    to its right, the right edge zero (a translation by one pixel to the left)."""
    frame = torch.rand(1, 1, 4, 5, dtype=torch.float64)
    filters = torch.zeros(1, 1, 9, 4, 5, dtype=torch.float64)
    filters[:, :, 1 * 3 + 2] = 1
    moved = filter_pixels(frame, filters)
    torch.testing.assert_close(moved[..., :-1], frame[..., 1:], rtol=0, atol=0)
    assert (moved[..., -1] == 0).all()


def test_the_paper_network_has_the_official_layers() -> None:
    """hidden=(32, 32, 64, 64, 128), filter 3, 9x9 filters on 1-channel frames, patch 1: the
    13 convolutions of the official Moving MNIST model (its 0.6M parameters)."""
    model = mimcast.create_model(
        "dfn", in_channels=1, height=16, width=16, hidden=(32, 32, 64, 64, 128), filter_size=3
    )
    official = [  # (in, out, filter) of dbbert/dfn model_bouncingMnistOriginal.py, in order
        (1, 32, 3), (32, 32, 3), (32, 64, 3), (64, 64, 3), (64, 128, 3),  # encoder, W_e
        (128, 128, 3), (128, 128, 3),  # the recurrence on h_{t-1}
        (128, 64, 3), (64, 64, 3), (64, 64, 3), (64, 64, 3), (64, 128, 1),  # decoder
        (128, 81, 1),  # the filter-generating layer
    ]  # fmt: skip
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in convs] == official
    assert all(m.bias is not None for m in convs)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == sum(i * o * f * f + o for i, o, f in official)
    assert round(n_params / 1e5) == 6


def test_persistence_is_reachable_and_training_moves_the_frame() -> None:
    """A head whose logits all but select the centre tap predicts the frame read (DFN's
    persistence); a fresh model fitted briefly on frames moving one pixel right beats
    persistence by far: the filters learn the motion."""
    torch.manual_seed(0)
    model = mimcast.create_model(
        "dfn", in_channels=1, height=8, width=8, hidden=(8, 8), filter_size=3, dfn_filter_size=3
    )
    with torch.no_grad():
        model.head.filters.weight.zero_()
        model.head.filters.bias.fill_(-20.0)
        model.head.filters.bias[4] = 20.0  # the centre tap of the only channel
    base = torch.zeros(4, 1, 8, 12)
    base[:, :, 2:5, 1:4] = torch.rand(4, 1, 3, 3) + 0.5
    frames = torch.stack([base[..., t : t + 8] for t in range(4, -1, -1)], dim=1)  # moving right
    with torch.no_grad():
        still = model(frames, context_len=4)  # every step reads a true frame
    torch.testing.assert_close(still, frames[:, :-1], rtol=0, atol=1e-6)
    persistence = ((frames[:, :-1] - frames[:, 1:]) ** 2).mean().item()
    model = mimcast.create_model(
        "dfn", in_channels=1, height=8, width=8, hidden=(8, 8), filter_size=3, dfn_filter_size=3
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        loss = ((model(frames, context_len=4) - frames[:, 1:]) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * persistence
