"""CDNA (Finn, Goodfellow and Levine, NIPS 2016, "Unsupervised Learning for Physical
Interaction through Video Prediction"): a ConvLSTM encoder-decoder emits K normalised
convolution kernels, each applied to the frame the step read, and K + 1 masks that composite
the K transformed frames and that frame itself (the background) into the next frame:

    x_{t+1} = m_0 o x_t + sum_k m_k o (kappa_k * x_t),   (m_0 .. m_K) a softmax per pixel,
    kappa_k = relu(w_k - 1e-12) + 1e-12, divided by its sum over its 5 x 5 taps,

the kernels w = W vec(B_t) + b from the bottleneck B_t (the deepest ConvLSTM's output), the
masks a 1x1 convolution of the top features; K = model.cdna_kernels (10 in the paper). A
kernel is the same for every channel of the frame, as in the paper (a transformation of the
image, not a filter per channel).

The network is the paper's (Figure 4; tensorflow/models research/video_prediction): a
convolution, seven ConvLSTMs of 32, 32, 64, 64, 128, 64, 32 channels at 1/2, 1/2, 1/4, 1/4,
1/8, 1/4, 1/2 of the frame size, stride-2 3x3 convolutions between the levels going down and
transposed ones going up, each decoder level's output concatenated with the encoder's input
to that level (skips), and a last convolution before the masks; ReLUs after the convolutions
and, with `layer_norm` (which the paper uses), a layer norm after the first and last
convolution and every ConvLSTM. Here `hidden` gives the ConvLSTM widths, `filter_size` their
filters and the first convolution's (5 in the paper); the number of levels follows the
number of layers L: (L - 1) // 3 halvings, two layers per level going down, one going up, so
hidden=(32, 32, 64, 64, 128, 64, 32) is the paper's network, 4 layers give levels 0, 0, 1, 0,
and 1 to 3 layers stay at one level. The paper's first stride-2 convolution and last
transposed one are the patch folding here: the network runs on the folded grid, and the
masks are generated at full resolution through the fold (p*p per grid cell), so patch_size 2
on 64 x 64 frames is the paper's layout.

What differs from the official code, on purpose: it builds K + 1 masks for K + 2 images (the
previous frame, an image generated from scratch, the K transformed ones), so `zip` drops the
last kernel's image; here there are K + 1 masks for the previous frame and the K kernels, as
the paper describes (no generated image). The masks are a softmax of a linear 1x1
convolution (the code passes them through a ReLU first, slim's default activation).
model.cdna_composite="official" does as the code does (the generated image, the ReLU, the
dropped kernel), so that the code's weights give its outputs. One difference stays: the
last convolution has a ReLU, as in Xiaohui9607's PyTorch port, where the official code's
(convt3) has none. tests/models/test_cdna_parity.py checks the ConvLSTM stack, the kernels
and the "official" head against that port. The robot's state and action inputs (and the 1x1
convolution that merges them in) are not here.
There is no OpenSTL code (variant "paper" only), and `model.residual` is refused: the
prediction is already a composite of the last frame, whose background mask is persistence.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mimcast.models.cells import ConvLSTMCell
from mimcast.models.config import ModelConfig
from mimcast.models.layers import (
    ConvSpec,
    LSTMState,
    folded_frame,
    full_frame,
    layer_probe,
    make_norm,
    neighbourhoods,
)
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec

KERNEL = 5  # the paper's CDNA kernel size (DNA_KERN_SIZE)
RELU_SHIFT = 1e-12  # kernels are made positive as relu(w - shift) + shift, as in the paper's code


class CDNAFeatures(NamedTuple):
    """What one step gives the head: the top features and the bottleneck."""

    top: Tensor  # (B, hidden[-1], h, w)
    bottleneck: Tensor  # (B, c, h_b, w_b): the deepest ConvLSTM's output


def layer_levels(n_layers: int) -> list[int]:
    """The level (halvings of the folded grid) of each ConvLSTM: 7 layers -> 0, 0, 1, 1, 2, 1, 0."""
    down = (n_layers - 1) // 3
    bottom = n_layers - 1 - down
    encoder = [min(i // 2, down - 1) if down else 0 for i in range(bottom)]
    return [*encoder, down, *range(down - 1, -1, -1)]


def level_grids(grid: tuple[int, int], depth: int) -> list[tuple[int, int]]:
    """State grid of each level: a stride-2 3x3 convolution (padding 1) rounds up."""
    grids = [grid]
    for _ in range(depth):
        h, w = grids[-1]
        grids.append((-(-h // 2), -(-w // 2)))
    return grids


def _relu_conv(conv: nn.Module) -> nn.Sequential:
    return nn.Sequential(conv, nn.ReLU())


class CDNAStack(RecurrentStack):
    """The ConvLSTM encoder-decoder, one step; returns CDNAFeatures for the head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden, k = config.hidden, config.filter_size
        self.levels = layer_levels(len(hidden))
        grids = level_grids(config.grid, max(self.levels))
        norm = conv_spec(config).norm
        self.enc0 = nn.Sequential(
            nn.Conv2d(config.frame_channels, hidden[0], k, padding=k // 2),
            nn.ReLU(),
            make_norm(norm, hidden[0], grids[0]),
        )
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.resample = nn.ModuleDict()  # "down3": into layer 3 from the level above; "up5"
        self.skip: list[int] = []  # layers whose output is concatenated with their level's input
        c_in, skips, prev = hidden[0], {0: hidden[0]}, 0
        for l, (c, level) in enumerate(zip(hidden, self.levels)):
            if level > prev:
                self.resample[f"down{l}"] = _relu_conv(nn.Conv2d(c_in, c_in, 3, 2, padding=1))
                skips[level] = c_in
            elif level < prev:
                extra = tuple(g - 2 * g_in + 1 for g, g_in in zip(grids[level], grids[prev]))
                up = nn.ConvTranspose2d(c_in, c_in, 3, 2, padding=1, output_padding=extra)
                self.resample[f"up{l}"] = _relu_conv(up)
            self.layers.append(ConvLSTMCell(c_in, c, ConvSpec(k, grids[level]), peephole=False))
            self.norms.append(make_norm(norm, c, grids[level]))
            c_in = c
            if level < prev or l == len(hidden) - 1:  # the decoder's layers, and the last
                self.skip.append(l)
                c_in += skips[level]
            prev = level
        self.enc6 = nn.Sequential(  # the last convolution (the official code's name)
            nn.Conv2d(c_in, hidden[-1], 3, padding=1),
            nn.ReLU(),
            make_norm(norm, hidden[-1], grids[0]),
        )
        self.bottom = self.levels.index(max(self.levels))
        area = grids[max(self.levels)][0] * grids[max(self.levels)][1]
        self.bottleneck_features = hidden[self.bottom] * area
        self.hidden, self.grids = hidden, grids
        self.out_channels = hidden[-1]

    def build_head(self, config: ModelConfig) -> nn.Module:
        return CompositingHead(self.out_channels, self.bottleneck_features, config)

    @property
    def input_conv(self) -> nn.Module:
        return self.enc0

    def initial_state(self, x: Tensor) -> tuple[LSTMState, ...]:
        def zeros(c: int, level: int) -> Tensor:
            return x.new_zeros(x.shape[0], c, *self.grids[level])

        return tuple(
            LSTMState(zeros(c, level), zeros(c, level))
            for c, level in zip(self.hidden, self.levels)
        )

    def forward(
        self,
        x: Tensor,
        state: tuple[LSTMState, ...] | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[CDNAFeatures, tuple[LSTMState, ...]]:
        """`x_gates`: enc0(x) computed beforehand (batched over the steps of known input)."""
        if state is None:
            state = self.initial_state(x)
        out = self.enc0(x) if x_gates is None else x_gates
        level_inputs = {0: out}
        new_state, outputs = [], []
        for l, (cell, norm, st) in enumerate(zip(self.layers, self.norms, state)):
            if f"down{l}" in self.resample:
                out = self.resample[f"down{l}"](out)
                level_inputs[self.levels[l]] = out
            elif f"up{l}" in self.resample:
                out = self.resample[f"up{l}"](out)
            h, st = cell(out, st, layer_probe(probe, l))
            new_state.append(st)
            out = norm(h)
            outputs.append(out)
            if l in self.skip:
                out = torch.cat([out, level_inputs[self.levels[l]]], dim=1)
        return CDNAFeatures(self.enc6(out), outputs[self.bottom]), tuple(new_state)


class CompositingHead(nn.Module):
    """Kernels from the bottleneck (a fully connected layer), masks from the top features (a
    1x1 convolution, p*p*(K + 1) channels: K + 1 masks per pixel), the composite."""

    def __init__(self, in_channels: int, bottleneck_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.p, self.k = config.patch_size, config.cdna_kernels
        self.kernels = nn.Linear(bottleneck_features, self.k * KERNEL**2)
        self.masks = nn.Conv2d(in_channels, self.p**2 * (self.k + 1), 1)
        self.official = config.cdna_composite == "official"
        if self.official:  # the official code's image generated from scratch (its enc7)
            self.generated = nn.Conv2d(in_channels, config.frame_channels, 1)

    def forward(self, h: CDNAFeatures, x_in: Tensor) -> Tensor:
        b = x_in.shape[0]
        raw = self.kernels(h.bottleneck.flatten(1)).reshape(b, self.k, KERNEL, KERNEL)
        logits = full_frame(self.masks(h.top), self.p)  # (B, K + 1, H, W)
        frame, generated = full_frame(x_in, self.p), None
        if self.official:
            logits = F.relu(logits)
            generated = torch.sigmoid(full_frame(self.generated(h.top), self.p))
        masks = logits.softmax(dim=1)
        return folded_frame(composite(frame, normalised_kernels(raw), masks, generated), self.p)


def normalised_kernels(raw: Tensor) -> Tensor:
    """(B, K, k, k) -> positive kernels summing to 1 over their k x k taps (at least float32:
    a bf16 sum of 25 taps would be off by a percent)."""
    raw = raw.to(torch.promote_types(raw.dtype, torch.float32))
    positive = F.relu(raw - RELU_SHIFT) + RELU_SHIFT
    return positive / positive.sum(dim=(2, 3), keepdim=True)


def transformed_frames(frame: Tensor, kernels: Tensor) -> Tensor:
    """Each of K kernels (B, K, k, k) applied to the frame (B, C, H, W) as a cross-correlation
    with zero padding (TensorFlow's depthwise_conv2d), every channel alike -> (B, K, C, H, W)."""
    b, n, k, _ = kernels.shape
    taps = neighbourhoods(frame, k).to(kernels.dtype)  # (B, C, k*k, H, W)
    return torch.einsum("bkn,bcnhw->bkchw", kernels.reshape(b, n, k * k), taps)


def composite(
    frame: Tensor, kernels: Tensor, masks: Tensor, generated: Tensor | None = None
) -> Tensor:
    """m_0 o frame + sum_k m_k o (kernel_k * frame); masks (B, K + 1, H, W), mask 0 the frame's.
    With an image `generated` (B, C, H, W), as in the official code: mask 1 is that image's and
    masks 2 .. K the first K - 1 kernels' (its zip drops the last kernel's copy)."""
    moved = transformed_frames(frame, kernels)
    if generated is not None:
        moved = torch.cat([generated[:, None].to(moved.dtype), moved[:, :-1]], dim=1)
    return masks[:, :1] * frame + (masks[:, 1:, None] * moved).sum(dim=1)


@register_model("cdna", variants=("paper",))
def build_cdna(config: ModelConfig) -> RecurrentStack:
    return CDNAStack(config)
