"""Make tests/fixtures/trajgru_parity.npz from Hzzone/Precipitation-Nowcasting's PyTorch TrajGRU.

Usage: python scripts/trajgru_fixture.py MIRROR_GIT_DIR [OUT.npz]
(MIRROR_GIT_DIR: a bare git mirror of github:Hzzone/Precipitation-Nowcasting.)

Its nowcasting/models/{trajGRU,model,encoder}.py and nowcasting/utils.py run from a temporary
folder (utils.py without its cv2 and HKO-mask imports, which make_layers does not use; its
config.py is replaced by a stand-in with the three values trajGRU.py reads, as config.py
needs the authors' own folders). The port's Encoder is built in float64 with two levels whose
stages are mimcast's: a filter_size convolution of the frame to 16 channels, then a 3x3
stride-2 convolution, each with a leaky ReLU; its parameters are copied into a mimcast
TrajGRU of the same size (trajgru_grid="torch_port", the ports' sampling grid) under
mimcast's names (PARAMS below); both run on the same seeded frames and the port's per-step
outputs of every encoder level are stored with the parameters and the frames.

Only the encoder is compared: the port's forecaster reads no input at its top level and starts
from the encoder's final states, where mimcast's runs at every step from its own state (the
simplification in trajgru.py's docstring), so no mimcast output of the whole model is the
port's. The encoder's levels hold every TrajGRU operation (flows, warps, gates) and the
level wiring below the forecaster.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from peer_code import REPO, extract, head_commit, save

import mimcast

sys.path.insert(0, str(REPO))
from tests.models.test_trajgru_parity import encoder_outputs  # noqa: E402

SIZE = dict(in_channels=1, height=7, width=9, hidden=(4, 6), filter_size=3, trajgru_links=(3, 2))
STEPS, BATCH = 4, 2
LIMIT, FLOW_LIMIT = 0.3, 0.1  # parameters uniform in +-LIMIT; the flow output's: flows ~ 1 pixel

CONFIG_STAND_IN = f'''"""Stand-in for nowcasting/config.py: the values trajGRU.py reads."""
from types import SimpleNamespace

import torch

cfg = SimpleNamespace(
    GLOBAL=SimpleNamespace(DEVICE=torch.device("cpu")),
    HKO=SimpleNamespace(BENCHMARK=SimpleNamespace(IN_LEN={STEPS}, OUT_LEN={STEPS})),
    MODEL=SimpleNamespace(),
)
from nowcasting.models.model import activation  # noqa: E402  (config.py imports it last too)

cfg.MODEL.RNN_ACT_TYPE = activation("leaky", negative_slope=0.2, inplace=True)
'''


def load_port(mirror: str):
    folder = extract(
        mirror,
        {f"nowcasting/models/{m}.py": f"nowcasting/models/{m}.py"
         for m in ("trajGRU", "model", "encoder")} | {"nowcasting/utils.py": "nowcasting/utils.py"},
        {"nowcasting/utils.py": [("import cv2\n", ""),
                                 ("from nowcasting.hko.mask import read_mask_file\n", "")]},
    )  # fmt: skip
    (folder / "nowcasting/config.py").write_text(CONFIG_STAND_IN)
    from nowcasting.models.trajGRU import TrajGRU  # first: the port's own import order

    # isort: split
    from nowcasting.models.encoder import Encoder

    class TrajGRU64(TrajGRU):
        """The port's TrajGRU with a float64 zero state (its own is float32)."""

        def forward(self, inputs=None, states=None, seq_len=STEPS):
            if states is None:
                b, _, h, w = inputs.shape[1:]
                states = inputs.new_zeros(b, self._num_filter, h, w)
            return super().forward(inputs, states, seq_len)

    return Encoder, TrajGRU64


def build_port(Encoder, TrajGRU64) -> torch.nn.Module:
    (h0, h1), k, (l0, l1) = SIZE["hidden"], SIZE["filter_size"], SIZE["trajgru_links"]
    grid0, grid1 = (SIZE["height"], SIZE["width"]), (4, 5)
    subnets = [{"conv1_leaky_1": [SIZE["in_channels"], 16, k, 1, k // 2]},
               {"conv2_leaky_1": [h0, h1, 3, 2, 1]}]  # fmt: skip
    rnns = [
        TrajGRU64(16, h0, (BATCH, *grid0), L=l0, i2h_kernel=(k, k), i2h_pad=(k // 2, k // 2)),
        TrajGRU64(h1, h1, (BATCH, *grid1), L=l1, i2h_kernel=(k, k), i2h_pad=(k // 2, k // 2)),
    ]
    return Encoder(subnets, rnns).double()


def params(port: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The port's parameters under mimcast's names. The port samples at p - flow (MXNet's
    convention), mimcast at p + flow: the flow output is negated."""
    sd = port.state_dict()
    out = {
        "stack.frame_conv.weight": sd["stage1.conv1_leaky_1.weight"],
        "stack.frame_conv.bias": sd["stage1.conv1_leaky_1.bias"],
        "stack.down.0.weight": sd["stage2.conv2_leaky_1.weight"],
        "stack.down.0.bias": sd["stage2.conv2_leaky_1.bias"],
    }
    names = {"conv_x.conv": "i2h", "flow_x": "i2f_conv1", "flow_h": "h2f_conv1",
             "flow_out": "flows_conv", "conv_h.conv": "ret"}  # fmt: skip
    for level in range(2):
        for ours, theirs in names.items():
            for kind in ("weight", "bias"):
                value = sd[f"rnn{level + 1}.{theirs}.{kind}"]
                out[f"stack.layers.{level}.{ours}.{kind}"] = -value if ours == "flow_out" else value
    return {k: v.clone() for k, v in out.items()}


def run_port(port: torch.nn.Module, frames: torch.Tensor) -> list[torch.Tensor]:
    """Per-step outputs of each encoder level, (B, T, C, h, w)."""
    seen = []
    hooks = [getattr(port, f"rnn{i}").register_forward_hook(
        lambda _m, _i, out: seen.append(out[0].transpose(0, 1))) for i in (1, 2)]  # fmt: skip
    with torch.no_grad():
        port(frames.transpose(0, 1))  # the port's layout: (T, B, C, H, W)
    for hook in hooks:
        hook.remove()
    return seen


def main(mirror: str, out: str = "tests/fixtures/trajgru_parity.npz") -> None:
    torch.manual_seed(0)
    port = build_port(*load_port(mirror))
    with torch.no_grad():
        for name, p in port.named_parameters():
            limit = FLOW_LIMIT if "flows_conv" in name else LIMIT
            p.uniform_(-limit, limit)
    frames = torch.rand(BATCH, STEPS, 1, SIZE["height"], SIZE["width"], dtype=torch.float64)
    expected = run_port(port, frames)
    net = mimcast.create_model("trajgru", trajgru_grid="torch_port", **SIZE).double()
    weights = params(port)
    net.load_state_dict(weights, strict=False)
    for level, (ours, theirs) in enumerate(zip(encoder_outputs(net, frames), expected)):
        print(f"level {level}: max |mimcast - port| = {(ours - theirs).abs().max():.2e}, "
              f"|output| ~ {theirs.abs().mean():.3f}")  # fmt: skip
    with torch.no_grad():
        x = torch.nn.functional.leaky_relu(net.stack.frame_conv(frames[:, 1]), 0.2)
        flows = net.stack.layers[0].flows(x, expected[0][:, 0])
    print(f"flows at level 0, step 2: std {flows.std():.2f} pixels")
    arrays = {f"param/{k}": v.numpy() for k, v in weights.items()}
    arrays |= {f"encoder/{i}": e.numpy() for i, e in enumerate(expected)}
    meta = dict(SIZE, steps=STEPS, batch=BATCH, commit=head_commit(mirror))
    save(out, arrays | {"frames": frames.numpy(), "meta/config": np.array(repr(meta))})


if __name__ == "__main__":
    main(*sys.argv[1:])
