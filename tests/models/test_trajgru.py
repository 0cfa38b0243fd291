"""TrajGRU: the warp against a loop over pixels of the paper's bilinear-sampling formula, the
cell against Eq. 3 written out, the encoder-forecaster's levels and the links setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mimcast
from mimcast.models.layers import ConvSpec
from mimcast.models.trajgru import TrajGRUCell, warp, warp_links


def numpy_warp(h: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The paper's warp, pixel by pixel: M[c, i, j] = sum_{m, n} H[c, m, n]
    max(0, 1 - |i + V_ij - m|) max(0, 1 - |j + U_ij - n|), with flow = (U, V)."""
    n_batch, _, height, width = h.shape
    rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
    out = np.zeros_like(h)
    for n in range(n_batch):
        for i in range(height):
            for j in range(width):
                y, x = i + flow[n, 1, i, j], j + flow[n, 0, i, j]
                weight = np.maximum(0, 1 - np.abs(y - rows)) * np.maximum(0, 1 - np.abs(x - cols))
                out[n, :, i, j] = (h[n] * weight).sum(axis=(1, 2))
    return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 1, 6), (2, 1, 4, 1)])
def test_warp_is_bilinear_sampling_along_the_flow(shape) -> None:
    """Random flows of a few pixels (some points outside the grid, which reads zeros); sides
    of one pixel included (where a normalisation for align_corners=True divides by zero)."""
    rng = np.random.default_rng(0)
    h = rng.normal(size=shape)
    flow = rng.normal(scale=2.0, size=(shape[0], 2, *shape[2:]))
    flow[0, :, 0, 0] = (1.0, -1.0)  # whole pixels too
    got = warp(torch.from_numpy(h), torch.from_numpy(flow)).numpy()
    np.testing.assert_allclose(got, numpy_warp(h, flow), rtol=0, atol=1e-9)


def test_warp_directions_and_the_identity() -> None:
    h = torch.arange(12, dtype=torch.float64).reshape(1, 1, 3, 4)
    zero = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(warp(h, zero), h, rtol=0, atol=1e-12)  # pixel centres exact
    right = zero.clone()
    right[:, 0] = 1.0  # u = 1: pixel (i, j) reads (i, j + 1); the last column reads zeros
    expected = F.pad(h[..., 1:], (0, 1))
    torch.testing.assert_close(warp(h, right), expected, rtol=0, atol=1e-12)
    down = zero.clone()
    down[:, 1] = 0.5  # v = 1/2: halfway to the row below
    expected = (h + F.pad(h[..., 1:, :], (0, 0, 0, 1))) / 2
    torch.testing.assert_close(warp(h, down), expected, rtol=0, atol=1e-12)


def test_warp_links_is_one_warp_per_link_in_link_order() -> None:
    h = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    flows = torch.randn(2, 2 * 4, 4, 5, dtype=torch.float64)
    expected = torch.cat([warp(h, flows[:, 2 * l : 2 * l + 2]) for l in range(4)], dim=1)
    torch.testing.assert_close(warp_links(h, flows), expected, rtol=0, atol=0)


def conv(layer: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, layer.weight, layer.bias, padding=layer.weight.shape[-1] // 2)


def test_cell_is_equation_3() -> None:
    """Every weight random (the flow output too, so that the flows move); the flow network,
    the warp (the pixel loop above) and the gates written out one line each."""
    cin, c, links, grid = 3, 4, 3, (5, 6)
    cell = TrajGRUCell(cin, c, links, ConvSpec(3, grid)).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.uniform_(-0.5, 0.5)
        cell.flow_out.weight.mul_(0.05)  # flows of about a pixel, not all off the grid
    x, h = torch.randn(2, cin, *grid).double(), torch.randn(2, c, *grid).double()

    flows = conv(cell.flow_out, F.leaky_relu(conv(cell.flow_x, x) + conv(cell.flow_h, h), 0.2))
    assert 0.2 < flows.std() < 5
    warped = [numpy_warp(h.numpy(), flows[:, 2 * l : 2 * l + 2].detach().numpy())
              for l in range(links)]  # fmt: skip
    warped = torch.from_numpy(np.concatenate(warped, axis=1))
    w_xr, w_xz, w_xh = cell.conv_x.conv.weight.chunk(3)
    b_xr, b_xz, b_xh = cell.conv_x.conv.bias.chunk(3)
    w_hr, w_hz, w_hh = cell.conv_h.conv.weight.chunk(3)  # 1x1 over the L warped states
    b_hr, b_hz, b_hh = cell.conv_h.conv.bias.chunk(3)
    z = torch.sigmoid(F.conv2d(x, w_xz, b_xz, padding=1) + F.conv2d(warped, w_hz, b_hz))
    r = torch.sigmoid(F.conv2d(x, w_xr, b_xr, padding=1) + F.conv2d(warped, w_hr, b_hr))
    h_cand = F.leaky_relu(
        F.conv2d(x, w_xh, b_xh, padding=1) + r * F.conv2d(warped, w_hh, b_hh), 0.2
    )
    expected = (1 - z) * h_cand + z * h
    with torch.no_grad():
        torch.testing.assert_close(cell(x, h), expected, rtol=0, atol=1e-9)


def test_flows_start_at_zero_so_every_link_starts_as_the_identity() -> None:
    cell = TrajGRUCell(3, 4, 5, ConvSpec(3, (4, 4))).double()
    x, h = torch.randn(2, 3, 4, 4).double(), torch.randn(2, 4, 4, 4).double()
    flows = cell.flows(x, h)
    assert flows.shape == (2, 10, 4, 4) and torch.equal(flows, torch.zeros_like(flows))
    torch.testing.assert_close(warp_links(h, flows), h.repeat(1, 5, 1, 1), rtol=0, atol=1e-12)


def test_encoder_forecaster_levels_halve_the_grid_and_probes_see_every_layer() -> None:
    """7 x 9 states: levels of 7 x 9, 4 x 5 and 2 x 3; upsampling doubles and crops back."""
    model = mimcast.create_model("trajgru", in_channels=1, height=7, width=9,
                                 hidden=(4, 6, 8), trajgru_links=(5, 3, 2))  # fmt: skip
    seen = set()
    x = torch.rand(2, 1, 7, 9)
    out, state = model.stack(x, None, lambda layer, name, value: seen.add((layer, name)))
    assert out.shape == (2, 16, 7, 9)
    sizes = [(2, 4, 7, 9), (2, 6, 4, 5), (2, 8, 2, 3)]
    assert [tuple(s.shape) for s in state.encoder] == sizes
    assert [tuple(s.shape) for s in state.forecaster] == sizes
    assert seen == {(layer, "update") for layer in range(6)}
    assert [cell.flow_out.out_channels for cell in model.stack.layers] == [10, 6, 4] * 2
    assert model.predict(torch.rand(2, 3, 1, 7, 9), horizon=2).shape == (2, 2, 1, 7, 9)


def test_links_setting() -> None:
    frames = dict(in_channels=1, height=8, width=8, hidden=(4, 4))
    model = mimcast.create_model("trajgru", trajgru_links=7, **frames)
    assert model.config.trajgru_links == (7,)
    assert [cell.flow_out.out_channels for cell in model.stack.layers] == [14] * 4
    assert mimcast.create_model("trajgru", **frames).config.trajgru_links == (13,)  # the paper
    with pytest.raises(mimcast.ConfigError, match="has 3 values for 2 levels"):
        mimcast.create_model("trajgru", trajgru_links=(3, 4, 5), **frames)
    with pytest.raises(mimcast.ConfigError, match="trajgru_links must be >= 1"):
        mimcast.create_model("trajgru", trajgru_links=(0,), **frames)
    with pytest.raises(mimcast.ConfigError, match="applies to the 'trajgru' model only"):
        mimcast.create_model("convlstm", trajgru_links=(5,), **frames)
