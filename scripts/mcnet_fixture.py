"""Write tests/fixtures/mcnet_parity.npz: forecasts of the PyTorch MCNet port's own generator
(sunxm2357/mcnet_pytorch, models/networks.py) with the weights of a mimcast MCNet, in float64.

    PYTHONPATH=src python scripts/mcnet_fixture.py PORT_GIT_DIR [--output FILE]

PORT_GIT_DIR is a git directory of the port (a clone's .git, or a bare mirror); its files are
read with `git show HEAD:...` into a temporary folder and imported from there. The script
builds a small mimcast MCNet (widths 3, 6, 12, filter 3, 24 x 32 grey frames), draws every
weight from a seeded normal (He scale, biases 0.1), copies them into the port's Generator,
runs the port on a seeded context of 4 frames for 3 forecasts, checks mimcast's forecasts
against them (1e-9), and saves the context, the weights and the port's forecasts.

What is changed in the port to run it, and why (nothing else):
- Python 3: ConvLstmCell passes padding=(feature_size - 1) / 2, a float under Python 3, which
  PyTorch refuses; it is set to the integer it means (1 for the 3 x 3 filter).
- util/util.py imports torchvision for its image grids (not used by the generator) and is
  given an empty stand-in module; torchvision is not installed here.
- The port's defect: its DecCnn feeds unpool(u) + r to each decoder stage without the ReLU
  that the official TensorFlow code applies (relu(tf.add(depool, res))). A ReLU is put in
  front of each stage (dec3, dec2, dec1), so the fixture checks mimcast's decoder, which is
  the official one.
The port's frames are in [-1, 1] and its differences in [0, 1] (its KTH loader); mimcast's
frames are in [0, 1], so the port is given 2x - 1, differences x_t - x_{t-1}, and its
forecasts y are compared as (y + 1) / 2 (models/mcnet.py, "Units").
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

import mimcast

CONFIG = dict(in_channels=1, height=24, width=32, hidden=(3, 6, 12), filter_size=3)
BATCH, CONTEXT, HORIZON, SEED = 2, 4, 3, 0
# mimcast module -> the port's Generator module holding the same convolution
MODULES = {
    "stack.motion.first.0": "motion_enc.dyn_conv1.0",
    "stack.motion.scales.0.0": "motion_enc.dyn_conv2.1",
    "stack.motion.scales.1.0": "motion_enc.dyn_conv3.1",
    "stack.content.first.0": "content_enc.cont_conv1.0",
    "stack.content.first.2": "content_enc.cont_conv1.2",
    "stack.content.scales.0.0": "content_enc.cont_conv2.1",
    "stack.content.scales.0.2": "content_enc.cont_conv2.3",
    "stack.content.scales.1.0": "content_enc.cont_conv3.1",
    "stack.content.scales.1.2": "content_enc.cont_conv3.3",
    "stack.content.scales.1.4": "content_enc.cont_conv3.5",
    "stack.combine.0": "comb_layers.h_comb.0",
    "stack.combine.2": "comb_layers.h_comb.2",
    "stack.combine.4": "comb_layers.h_comb.4",
    **{f"stack.residuals.{l}.{i}": f"residual{l + 1}.res.{i}" for l in range(3) for i in (0, 2)},
    "stack.decoder.2.0": "dec_cnn.dec3.0",
    "stack.decoder.2.2": "dec_cnn.dec3.2",
    "stack.decoder.2.4": "dec_cnn.dec3.4",
    "stack.decoder.1.0": "dec_cnn.dec2.0",
    "stack.decoder.1.2": "dec_cnn.dec2.2",
    "stack.decoder.0.0": "dec_cnn.dec1.0",
    "head": "dec_cnn.dec1.2",
}


def import_port(git_dir: Path, into: Path) -> types.ModuleType:
    """The port's models/networks.py (and the util/util.py it imports), read from git."""
    for path in ("models/networks.py", "util/__init__.py", "util/util.py"):
        text = subprocess.run(
            ["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        (into / path).parent.mkdir(parents=True, exist_ok=True)
        (into / path).write_text(text)
    for name in ("torchvision", "torchvision.utils"):  # only its image grids would need it
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["torchvision"].utils = sys.modules["torchvision.utils"]
    sys.path.insert(0, str(into))
    spec = importlib.util.spec_from_file_location("mcnet_port", into / "models/networks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeded_weights(model: nn.Module, seed: int) -> dict[str, np.ndarray]:
    """Every weight normal with He's scale for its fan-in, every bias normal(0, 0.1), as
    float32 values (exact in float64 too)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            continue
        w = module.weight
        k = w.shape[2] * w.shape[3]
        fan_in = (w.shape[0] if isinstance(module, nn.ConvTranspose2d) else w.shape[1]) * k
        out[f"{name}.weight"] = rng.normal(0, (2 / fan_in) ** 0.5, w.shape).astype(np.float32)
        if module.bias is not None:
            out[f"{name}.bias"] = rng.normal(0, 0.1, module.bias.shape).astype(np.float32)
    return out


def copy_into_port(model: nn.Module, port: nn.Module) -> None:
    """mimcast's weights into the port's modules; the ConvLSTM's two convolutions (gates i,
    f, g, o) into the port's one on [input, h] (gates i, j = g, f, o, and +1 on f)."""
    mods, port_mods = dict(model.named_modules()), dict(port.named_modules())
    with torch.no_grad():
        for ours, theirs in MODULES.items():
            port_mods[theirs].weight.copy_(mods[ours].weight)
            port_mods[theirs].bias.copy_(mods[ours].bias)
        cell, conv = model.stack.lstm, port.convLstm_cell.conv
        order = [0, 2, 1, 3]  # the port's chunks (i, j, f, o) in mimcast's order (i, f, g, o)

        def reorder(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t.chunk(4)[i] for i in order])

        w = torch.cat([cell.conv_x.conv.weight, cell.conv_h.conv.weight], dim=1)
        conv.weight.copy_(reorder(w))
        bias = reorder(cell.conv_x.conv.bias.clone())
        n = bias.shape[0] // 4
        bias[2 * n : 3 * n] -= port.convLstm_cell.forget_bias  # it adds a constant +1
        conv.bias.copy_(bias)


def run_port(port: nn.Module, context: torch.Tensor) -> torch.Tensor:
    """The port's forecasts of (B, K, 1, H, W) frames in [0, 1], as (B, T, 1, H, W) in [0, 1]."""
    b, k, _, h, w = context.shape
    diffs = [context[:, t] - context[:, t - 1] for t in range(1, k)]
    targets = [2 * context[:, t] - 1 for t in range(k)]
    state = torch.zeros(b, 2 * CONFIG["hidden"][-1], h // 8, w // 8, dtype=context.dtype)
    with torch.no_grad():
        pred = port.forward(k, HORIZON, state, b, (h, w), diffs, targets)
    return (torch.stack(pred, dim=1) + 1) / 2


def build_port(networks: types.ModuleType, gf_dim: int) -> nn.Module:
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every module it initialises
        port = networks.define_generator(gf_dim, 1, CONFIG["filter_size"])
    port.convLstm_cell.conv.padding = (CONFIG["filter_size"] // 2,) * 2  # Python 3: an int
    return port


def restore_official_relu(port: nn.Module) -> None:
    """The official code's relu(unpool(u) + r) in front of each decoder stage."""
    for stage in ("dec3", "dec2", "dec1"):
        setattr(port.dec_cnn, stage, nn.Sequential(nn.ReLU(), *getattr(port.dec_cnn, stage)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=Path, help="the port's git directory")
    parser.add_argument("--output", type=Path, default=Path("tests/fixtures/mcnet_parity.npz"))
    args = parser.parse_args()
    torch.manual_seed(SEED)
    model = mimcast.create_model("mcnet", **CONFIG).double()
    weights = seeded_weights(model, SEED)
    model.load_state_dict({k: torch.from_numpy(v).double() for k, v in weights.items()})
    with tempfile.TemporaryDirectory() as tmp:
        networks = import_port(args.port.resolve(), Path(tmp))
        paper_size = sum(p.numel() for p in build_port(networks, 64).parameters())
        port = build_port(networks, CONFIG["hidden"][0]).double()
    copy_into_port(model, port)
    restore_official_relu(port)
    rng = np.random.default_rng(SEED)
    context = torch.from_numpy(rng.random((BATCH, CONTEXT, 1, CONFIG["height"], CONFIG["width"])))
    expected = run_port(port, context)
    gap = (model.predict(context, HORIZON) - expected).abs().max().item()
    print(f"mimcast vs the port: max |difference| {gap:.3g}; the port's paper size {paper_size}")
    if not gap < 1e-9:
        raise SystemExit("mimcast's MCNet does not reproduce the port: no fixture written")
    np.savez_compressed(
        args.output, config=np.array(json.dumps(CONFIG)), context=context.numpy(),
        expected=expected.numpy(), paper_parameters=np.array(paper_size),
        **{f"param/{k}": v for k, v in weights.items()},
    )  # fmt: skip
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
