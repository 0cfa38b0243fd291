"""VPN (Kalchbrenner et al., ICML 2017, "Video Pixel Networks"), the "VPN baseline": a
resolution-preserving encoder of residual multiplicative blocks reads each frame, a ConvLSTM
carries the encodings over time, and a decoder of residual multiplicative blocks turns the
ConvLSTM's output into the next frame.

The multiplicative unit (MU, the paper's Section 4.1), with 3x3 convolutions W_1..W_4 (with
biases, which the paper omits "for clarity") and sigmoid gates:

    g1 = s(W_1 * h)   g2 = s(W_2 * h)   g3 = s(W_3 * h)   u = tanh(W_4 * h)
    MU(h) = g1 o tanh(g2 o h + g3 o u)

and the residual multiplicative block (RMB, Section 4.2) on a map of 2c channels: a 1x1
convolution to c channels (no activation), two MUs of c channels, a 1x1 convolution back to
2c, the input added:

    RMB(h) = h + W_o * MU(MU(W_i * h)).

The encoder's RMBs have dilated MUs, rates 1, 2, 4, 8 in turn (the paper's dilated encoder:
with its 8 Moving MNIST RMBs, 1, 2, 4, 8 twice), with the padding that keeps every map at the
size of the folded frame; the decoder's MUs are not dilated. One step:

    e_t = Enc(x_t)          (x_t lifted to the encoder's width by a 1x1 convolution first)
    h_t, c_t = ConvLSTM(e_t, h_{t-1}, c_{t-1})
    x_{t+1} = head(Dec(h_t)),

the head the default 1x1 convolution to the folded frame (so `model.residual` works).

Which VPN this is: the MIM paper runs no VPN; its rows are quoted. Its Table 1 (SSIM 0.870,
MSE 64.1, MAE 131.0) reproduces PredRNN++'s Table 1 (Wang et al., ICML 2018) row for row from
FC-LSTM to PredRNN, where this row is the "VPN baseline"; its Table 7 row (MSE 0.744, 1.031,
1.251, 1.444) is, as far as we know, the same group's VPN baseline on TaxiBJ (the same numbers
are in their E3D-LSTM paper, ICLR 2019). Neither paper could be read here, so this rests on the
numbers and on issue #23's note. The VPN baseline is the VPN paper's own "baseline model" of
its Moving MNIST results: the same encoder, ConvLSTM and decoder, but a decoder that is not
conditioned on the pixels of the frame it generates. So the decoder here has no masked
(PixelCNN) convolutions and no input from the frame being predicted: every pixel of x_{t+1}
comes from the frames up to t at once. The full autoregressive VPN (a frame sampled pixel by
pixel, 64 x 64 network passes per frame) is not implemented.

Sizes: `hidden` = (encoder width 2c, ConvLSTM width, decoder width), a shorter tuple repeating
its last entry (hidden=256: all three 256); the MUs of a block are half its width (rounded
down); where the ConvLSTM and the decoder differ in width a 1x1 convolution joins them.
`vpn_encoder_blocks` and `vpn_decoder_blocks` count the RMBs. The paper's Moving MNIST network
is hidden=(256, 256, 256) with 8 and 12 RMBs, 3x3 filters, on the 64 x 64 frames at full
resolution (patch_size 1): 29.7M parameters. The VPN paper has no KTH or TaxiBJ network, and
whoever ran the TaxiBJ baseline did not publish its size. mimcast's study presets size it to
MIM's budget instead (studies/catalogue.py SIZES says what each one cuts).

No official code exists. Only the VPN paper's abstract and introduction were readable here:
the equations above are its Section 4 as known, and agree with o-tawab/Video-Pixel-Networks
(TensorFlow, never trained on the full set, its README says), read, not copied, for the MU and
RMB layout and the encoder's dilation list.

Choices, stated: the output is one real value per pixel (the head), trained with mimcast's
MSE, not the paper's 256-way softmax with cross-entropy; the frame enters the first RMB through
a 1x1 convolution (a 1-channel frame cannot be the residual of a 2c-channel block; the read
re-implementation broadcasts it instead); `filter_size` sets the MUs' and the ConvLSTM's
filters (3 in the paper); the ConvLSTM has no peepholes (a choice), and `layer_norm` (not in
the paper) normalises its gates only: the RMBs are the paper's, unnormalised. There is no
OpenSTL VPN (variant "paper" only). Frames (B, T, C, H, W) are read one step at a time, folded
into patches like every model's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mimcast.errors import ConfigError
from mimcast.models.cells import ConvLSTMCell
from mimcast.models.config import ModelConfig
from mimcast.models.layers import LSTMState, layer_probe, zeros_state
from mimcast.models.registry import register_model
from mimcast.models.stack import AuxTerms, LayerProbe, RecurrentStack
from mimcast.models.variants import conv_spec

DILATIONS = (1, 2, 4, 8)  # the encoder's MUs, block by block, repeated


class MultiplicativeUnit(nn.Module):
    """MU(h) = g1 o tanh(g2 o h + g3 o u): the four k x k convolutions of h (g1, g2, g3, u)
    as one, `channels` in and out, dilated by `dilation` with the padding that keeps the size."""

    def __init__(self, channels: int, k: int, dilation: int = 1) -> None:
        super().__init__()
        pad = dilation * (k // 2)
        self.gates = nn.Conv2d(channels, 4 * channels, k, padding=pad, dilation=dilation)

    def forward(self, h: Tensor) -> Tensor:
        g1, g2, g3, u = self.gates(h).chunk(4, dim=1)
        gated = torch.sigmoid(g2) * h + torch.sigmoid(g3) * torch.tanh(u)
        return torch.sigmoid(g1) * torch.tanh(gated)


class ResidualMultiplicativeBlock(nn.Module):
    """RMB(h) = h + W_o * MU(MU(W_i * h)): 1x1 to half the width, two MUs, 1x1 back."""

    def __init__(self, width: int, k: int, dilation: int = 1) -> None:
        super().__init__()
        half = width // 2
        self.reduce = nn.Conv2d(width, half, 1)
        self.units = nn.Sequential(
            MultiplicativeUnit(half, k, dilation), MultiplicativeUnit(half, k, dilation)
        )
        self.expand = nn.Conv2d(half, width, 1)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.expand(self.units(self.reduce(h)))


def vpn_widths(hidden: tuple[int, ...]) -> tuple[int, int, int]:
    """(encoder, ConvLSTM, decoder) widths from model.hidden, the last entry repeated."""
    if len(hidden) > 3:
        raise ConfigError(
            f"model.hidden of vpn is (encoder, ConvLSTM, decoder) widths, at most 3 numbers, "
            f"got {list(hidden)}"
        )
    enc, lstm, dec = (*hidden, *hidden[-1:] * (3 - len(hidden)))
    if min(enc, dec) < 2:
        raise ConfigError(
            f"model.hidden of vpn: the encoder and decoder widths must be at least 2 (their "
            f"multiplicative units are half as wide), got {list(hidden)}"
        )
    return enc, lstm, dec


class VPNStack(RecurrentStack):
    """Encoder (1x1 lift, dilated RMBs), ConvLSTM, decoder (RMBs), one step."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        enc, lstm, dec = vpn_widths(config.hidden)
        k = config.filter_size
        dilations = [DILATIONS[i % len(DILATIONS)] for i in range(config.vpn_encoder_blocks)]
        self.encode = nn.Sequential(
            nn.Conv2d(config.frame_channels, enc, 1),
            *(ResidualMultiplicativeBlock(enc, k, d) for d in dilations),
        )
        self.layers = nn.ModuleList([ConvLSTMCell(enc, lstm, conv_spec(config), peephole=False)])
        self.decode = nn.Sequential(
            nn.Conv2d(lstm, dec, 1) if lstm != dec else nn.Identity(),
            *(ResidualMultiplicativeBlock(dec, k) for _ in range(config.vpn_decoder_blocks)),
        )
        self.lstm_channels = lstm
        self.out_channels = dec

    @property
    def input_conv(self) -> nn.Module:
        return self.encode  # everything that reads x alone: batched over the known steps

    def initial_state(self, x: Tensor) -> LSTMState:
        return LSTMState(zeros_state(x, self.lstm_channels), zeros_state(x, self.lstm_channels))

    def forward(
        self,
        x: Tensor,
        state: LSTMState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, LSTMState]:
        """`x_gates`: encode(x) computed beforehand (batched over the steps of known input)."""
        if state is None:
            state = self.initial_state(x)
        e = self.encode(x) if x_gates is None else x_gates
        h, state = self.layers[0](e, state, layer_probe(probe, 0))
        return self.decode(h), state


@register_model("vpn", variants=("paper",))
def build_vpn(config: ModelConfig) -> RecurrentStack:
    return VPNStack(config)
