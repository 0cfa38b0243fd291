"""Make tests/fixtures/cdna_parity.npz from Xiaohui9607/physical_interaction_video_prediction_
pytorch, a PyTorch port of the official CDNA (Finn et al. 2016).

Usage: python scripts/cdna_fixture.py MIRROR_GIT_DIR [OUT.npz]
(MIRROR_GIT_DIR: a bare git mirror of that repository.)

Its networks.py runs from a temporary folder, at a tiny size: two lines rewritten, its
`lstm_size` list (the seven ConvLSTM widths, [32, 32, 64, 64, 128, 64, 32] there) and the
first ConvLSTM's input width, written there as 32 for lstm_size[0]. It is built in float64
with use_state=False, every frame fed (context_frames = T), and copied into a mimcast CDNA of
the same size (patch_size 2, layer_norm, filter_size 5) under mimcast's names (`params`); both
run on the same seeded frames. Stored: mimcast's parameters, the frames, and the port's
every ConvLSTM state (h, c), bottleneck (lstm5 after its norm) and K transformed frames at
every step; and for the head, the port's enc6 (after its norm) and predictions, with its
masks' and generated image's layers as a head of mimcast's with model.cdna_composite=
"official" over the 2x2-folded enc6 (`official_head_params`).

How the parameters map (each the same function, not an approximation):
- enc0, the port's 5x5 stride-2 convolution of the full frame, is mimcast's 5x5 convolution of
  the 2x2-folded frame with the taps it reaches and zeros elsewhere (`folded_stride2`);
- the port's ConvLSTM convolves cat(X, H) with gates i, j, f, o and adds 1 to f; mimcast's
  conv_x / conv_h have i, f, g, o, and the 1 goes into conv_x's f bias;
- the port's layer norms are nn.LayerNorm([C, H, W]) (a scale per element), mimcast's the
  paper's per channel: the port's scales and shifts are drawn per channel, equal over (H, W);
- the port's enc3 (the 1x1 convolution that merges the robot's state, here none) is set to the
  identity: it follows a ReLU, so relu(enc3(x)) = x, and mimcast has no such layer.
- the port passes its generated image through a ReLU before the sigmoid (the official code
  does not): its bias is set to 3, which keeps the pre-activation positive (checked), so that
  the ReLU does nothing.
Not compared: the port's enc6 itself (a transposed convolution to full resolution, then a
ReLU and a norm; mimcast's last convolution works on the folded grid): the head is fed the
port's enc6 instead.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from peer_code import REPO, extract, head_commit, save

import mimcast

sys.path.insert(0, str(REPO))
from tests.models.test_cdna_parity import official_head_predictions, run  # noqa: E402

HIDDEN = (3, 4, 5, 4, 6, 3, 4)
SIZE = dict(in_channels=2, height=16, width=16, patch_size=2, hidden=HIDDEN, filter_size=5,
            layer_norm=True, cdna_kernels=3)  # fmt: skip
STEPS, BATCH = 4, 2
GATES = (0, 2, 1, 3)  # mimcast's i, f, g, o among the port's i, j, f, o


def load_port(mirror: str):
    extract(
        mirror,
        {"networks.py": "networks.py"},
        {"networks.py": [
            ("lstm_size = [32, 32, 64, 64, 128, 64, 32]", f"lstm_size = {list(HIDDEN)}"),
            ("ConvLSTM(in_channels=32, out_channels=lstm_size[0]",
             "ConvLSTM(in_channels=lstm_size[0], out_channels=lstm_size[0]"),
        ]},
    )  # fmt: skip
    from networks import network

    return network


def build_port(network) -> torch.nn.Module:
    c, h, w, k = SIZE["in_channels"], SIZE["height"], SIZE["width"], SIZE["cdna_kernels"]
    port = network(c, h, w, k=-1, use_state=False, num_masks=k, cdna=True, context_frames=STEPS)
    with torch.no_grad():
        for name, m in port.named_modules():
            if isinstance(m, torch.nn.LayerNorm):  # one scale and shift per channel
                m.weight.copy_(torch.empty(m.weight.shape[0], 1, 1).uniform_(0.7, 1.3))
                m.bias.copy_(torch.empty(m.bias.shape[0], 1, 1).uniform_(-0.3, 0.3))
            elif name == "enc7":  # generated image: its pre-activation positive, see run_port
                m.bias.fill_(3.0)
            elif name == "enc3":
                m.weight.copy_(torch.eye(m.weight.shape[0])[..., None, None])
                m.bias.zero_()
            elif hasattr(m, "bias") and m.bias is not None and m.weight.dim() > 1:
                m.bias.uniform_(-0.3, 0.3)  # the default init's biases are tiny
    return port


def folded_stride2(weight: torch.Tensor) -> torch.Tensor:
    """A 5x5 stride-2 convolution of the full frame (O, C, 5, 5) as a 5x5 convolution of the
    2x2-folded frame (O, 4C, 5, 5): full-frame tap a of output i reads row 2i + a - 2 = 2(i +
    d) + r, folded row i + d, sub-row r (channel (r*2 + s)*C + c, layers.fold_patches)."""
    o, c = weight.shape[:2]
    out = weight.new_zeros(o, 4 * c, 5, 5)
    for a in range(5):
        d, r = divmod(a - 2, 2)
        for b in range(5):
            e, s = divmod(b - 2, 2)
            out[:, (r * 2 + s) * c : (r * 2 + s + 1) * c, d + 2, e + 2] = weight[:, :, a, b]
    return out


def lstm_params(sd: dict, l: int, in_channels: int) -> dict[str, torch.Tensor]:
    weight, bias = sd[f"lstm{l + 1}.conv.weight"], sd[f"lstm{l + 1}.conv.bias"].clone()
    gates = lambda t: torch.cat([t.chunk(4)[g] for g in GATES])  # noqa: E731
    bias.view(4, -1)[2] += 1.0  # the port's forget bias (its f is chunk 2)
    return {
        f"stack.layers.{l}.conv_x.conv.weight": gates(weight[:, :in_channels]),
        f"stack.layers.{l}.conv_x.conv.bias": gates(bias),
        f"stack.layers.{l}.conv_h.conv.weight": gates(weight[:, in_channels:]),
    }


def params(port: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The port's parameters that mimcast has, under mimcast's names."""
    sd = port.state_dict()
    out = {"stack.enc0.0.weight": folded_stride2(sd["enc0.weight"]),
           "stack.enc0.0.bias": sd["enc0.bias"]}  # fmt: skip
    norms = {"stack.enc0.2": "enc0_norm"} | {
        f"stack.norms.{l}": f"lstm{l + 1}_norm" for l in range(7)
    }
    for ours, theirs in norms.items():
        for kind in ("weight", "bias"):
            per_element = sd[f"{theirs}.{kind}"]
            assert (per_element == per_element[:, :1, :1]).all()
            out[f"{ours}.{kind}"] = per_element[:, 0, 0]
    for ours, theirs in {"down2": "enc1", "down4": "enc2", "up5": "enc4", "up6": "enc5"}.items():
        out |= {
            f"stack.resample.{ours}.0.{kind}": sd[f"{theirs}.{kind}"] for kind in ("weight", "bias")
        }
    ins = [HIDDEN[0], *HIDDEN[:5], HIDDEN[5] + HIDDEN[1]]  # each ConvLSTM's input width
    for l in range(7):
        out |= lstm_params(sd, l, ins[l])
    out |= {f"head.kernels.{kind}": sd[f"fc.{kind}"] for kind in ("weight", "bias")}
    return {k: v.clone() for k, v in out.items()}


def run_port(port: torch.nn.Module, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per step: each ConvLSTM's (h, c), the bottleneck, the K transformed frames."""
    seen: dict[str, list[torch.Tensor]] = {}

    def record(key: str, value: torch.Tensor) -> None:
        seen.setdefault(key, []).append(value)

    def state_hook(l: int):
        def hook(_module, _inputs, out) -> None:  # out: (h, (c, h))
            record(f"state/{l}/h", out[1][1])
            record(f"state/{l}/c", out[1][0])

        return hook

    for l in range(7):
        getattr(port, f"lstm{l + 1}").register_forward_hook(state_hook(l))
    port.lstm5_norm.register_forward_hook(lambda _m, _i, out: record("bottleneck", out))
    port.enc6_norm.register_forward_hook(lambda _m, _i, out: record("enc6", out))
    port.enc7.register_forward_hook(lambda _m, _i, out: record("enc7", out))
    transformation = port.cdna_transformation

    def recording(image, cdna_input):
        moved = transformation(image, cdna_input)
        record("transformed", torch.stack(moved, dim=1))
        return moved

    port.cdna_transformation = recording
    zeros = [frames.new_zeros(BATCH, 5)] * STEPS  # no robot state or action (use_state=False)
    with torch.no_grad():
        predictions, _ = port(list(frames.unbind(1)), zeros, zeros[0])
    # The port passes enc7 through a ReLU before the sigmoid (the official code does not):
    # with its pre-activation positive everywhere that ReLU does nothing.
    assert torch.cat(seen.pop("enc7")).min() > 0
    return {k: torch.stack(v, dim=1) for k, v in seen.items()} | {
        "prediction": torch.stack(predictions, dim=1)
    }


def official_head_params(port: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The port's masks and generated image (1x1 transposed convolutions of its full-resolution
    enc6) as mimcast's 1x1 convolutions of the 2x2-folded enc6: one block per sub-pixel, the
    channel order of layers.fold_patches. The kernels' layer is the model's (head.kernels)."""
    out = {}
    for ours, theirs in {"masks": port.maskout, "generated": port.enc7}.items():
        matrix = theirs.weight[:, :, 0, 0].T  # (out, in): a 1x1 transposed convolution's
        out[f"{ours}.weight"] = torch.block_diag(*[matrix] * 4)[..., None, None]
        out[f"{ours}.bias"] = theirs.bias.repeat(4)
    return {k: v.detach().clone() for k, v in out.items()}


def main(mirror: str, out: str = "tests/fixtures/cdna_parity.npz") -> None:
    torch.set_default_dtype(torch.float64)  # the port makes its zero states in the default dtype
    torch.manual_seed(0)
    port = build_port(load_port(mirror))
    frames = torch.rand(BATCH, STEPS, SIZE["in_channels"], SIZE["height"], SIZE["width"])
    expected = run_port(port, frames)
    net = mimcast.create_model("cdna", **SIZE).double()
    weights = params(port)
    missing, unexpected = net.load_state_dict(weights, strict=False)
    print(f"not loaded (not compared): {missing}; unknown: {unexpected}")
    got = run(net, frames)  # the parity test's own run
    for key, theirs in ((k, v) for k, v in expected.items() if k in got):
        print(f"{key}: max |mimcast - port| = {(got[key] - theirs).abs().max():.2e}, "
              f"|port| ~ {theirs.abs().mean():.3f}, shape {tuple(theirs.shape)}")  # fmt: skip
    head = official_head_params(port)
    head |= {k[len("head.") :]: v for k, v in weights.items() if k.startswith("head.kernels.")}
    ours = official_head_predictions(SIZE, head, frames, expected)
    print(
        f"official head: max |mimcast - port| = {(ours - expected['prediction']).abs().max():.2e}"
    )
    arrays = {f"param/{k}": v.numpy() for k, v in weights.items()}
    arrays |= {f"official_head/{k}": v.numpy() for k, v in head.items()}
    arrays |= {f"port/{k}": v.numpy() for k, v in expected.items()}
    meta = dict(SIZE, steps=STEPS, batch=BATCH, commit=head_commit(mirror))
    save(out, arrays | {"frames": frames.numpy(), "meta/config": np.array(repr(meta))})


if __name__ == "__main__":
    main(*sys.argv[1:])
