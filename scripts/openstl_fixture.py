"""Make tests/fixtures/openstl_parity_*.npz by running OpenSTL's own models in float64.

Usage: python scripts/openstl_fixture.py MIRROR_GIT_DIR [OUT_DIR]
(MIRROR_GIT_DIR: a bare git mirror of github:chengtan9907/OpenSTL; OUT_DIR: tests/fixtures.)

OpenSTL's openstl/models/{convlstm,predrnn,mim,predrnnpp,predrnnv2}_model.py and their
openstl/modules/*_modules.py run from a temporary folder, each model file's package import
rewritten to flat ones (as ../shared/tools/openstl_peer.sh does), with
openstl/utils/predrnn_utils.py for OpenSTL's reshape_patch and reshape_patch_back. Each model
is built with OpenSTL's own config fields, its parameters drawn by
tests/models/openstl_draws.py (uniform in [-0.3, 0.3], LayerNorm weights in [0.7, 1.3]); it
runs on drawn frames, folded by OpenSTL's reshape_patch, once with an all-zero mask and once
with a mixed one (per sample and step), the MIM-S memory OpenSTL keeps on its MIMBlocks reset
before each forward (a fresh state per sequence). The fixture stores the predictions
unfolded to full frames, the masks, the decoupling loss of PredRNN-V2 (its loss with
decouple_beta 1 minus the MSE of its predictions) and the parameters' layout; the test draws
the parameters and frames again.

The fixtures before this script (copied from the project's shared/fixtures, 3.5 MB) held the
same settings with stored weights; these hold the same checks in about 1/9 of the bytes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from peer_code import REPO, extract, head_commit, save

sys.path.insert(0, str(REPO))
from tests.models.openstl_draws import NORM_WEIGHTS, WEIGHTS, draw_frames, draw_params  # noqa: E402

MODELS = ("convlstm", "predrnn", "mim", "predrnnpp", "predrnnv2")
CLASSES = {"convlstm": "ConvLSTM_Model", "predrnn": "PredRNN_Model", "mim": "MIM_Model",
           "predrnnpp": "PredRNNpp_Model", "predrnnv2": "PredRNNv2_Model"}  # fmt: skip
FLAT = (  # the model files' one package import, as flat imports of the extracted modules
    "from predrnn_modules import SpatioTemporalLSTMCell\nfrom convlstm_modules import "
    "ConvLSTMCell\nfrom mim_modules import MIMBlock, MIMN\nfrom predrnnpp_modules import "
    "CausalLSTMCell, GHU\nfrom predrnnv2_modules import SpatioTemporalLSTMCellv2"
)
BASE = dict(hidden=8, T=6, pre=3, patch=2, layers=3, filter=3, batch=2)
FIXTURES = {  # the settings of the earlier fixtures, file by file
    "openstl_parity_ln0.npz": dict(seed=1, models=["mim", "predrnn", "convlstm"], C=1, H=16,
                                   W=16, layer_norm=0),
    "openstl_parity_ln1.npz": dict(seed=2, models=["mim", "predrnn", "convlstm"], C=2, H=12,
                                   W=16, layer_norm=1),
    "openstl_parity_pp_ln0.npz": dict(seed=5, models=["predrnnpp", "predrnnv2"], C=1, H=16,
                                      W=16, layer_norm=0),
    "openstl_parity_v2_ln1.npz": dict(seed=6, models=["predrnnv2"], C=1, H=12, W=16,
                                      layer_norm=1, layers=2),
}  # fmt: skip


def extract_openstl(mirror: str) -> None:
    files = {f"{m}_modules.py": f"openstl/modules/{m}_modules.py" for m in MODELS}
    files |= {f"{m}_model.py": f"openstl/models/{m}_model.py" for m in MODELS}
    files["predrnn_utils.py"] = "openstl/utils/predrnn_utils.py"  # reshape_patch and its inverse
    rewrites = {f"{m}_model.py": [(_package_import(mirror, m), FLAT)] for m in MODELS}
    extract(mirror, files, rewrites)


def _package_import(mirror: str, model: str) -> str:
    """The model file's `from openstl.modules import ...` line (it differs per file)."""
    text = subprocess.run(
        ["git", "-C", mirror, "show", f"HEAD:openstl/models/{model}_model.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return next(ln for ln in text.splitlines() if ln.startswith("from openstl.modules import"))


def layout(net: torch.nn.Module) -> list[tuple[str, tuple, tuple]]:
    """(name, shape, range) of every parameter, in state_dict order."""
    norm = {f"{n}.weight" for n, m in net.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    return [(n, tuple(p.shape), NORM_WEIGHTS if n in norm else WEIGHTS)
            for n, p in net.named_parameters()]  # fmt: skip


def fold(x: np.ndarray, p: int) -> torch.Tensor:
    """Full frames (B, T, C, H, W) through OpenSTL's own reshape_patch: (B, T, H/p, W/p, p*p*C)."""
    import predrnn_utils

    return predrnn_utils.reshape_patch(torch.from_numpy(x.transpose(0, 1, 3, 4, 2)), p)


def unfold(y: torch.Tensor, p: int) -> np.ndarray:
    """OpenSTL's reshape_patch_back, then (B, T, C, H, W)."""
    import predrnn_utils

    return predrnn_utils.reshape_patch_back(y, p).numpy().transpose(0, 1, 4, 2, 3)


def run_model(name: str, cfg: dict, frames: np.ndarray, masks: dict) -> tuple[list, dict]:
    module = __import__(f"{name}_model")
    configs = SimpleNamespace(
        in_shape=(cfg["T"], cfg["C"], cfg["H"], cfg["W"]), patch_size=cfg["patch"],
        filter_size=cfg["filter"], stride=1, layer_norm=cfg["layer_norm"],
        pre_seq_length=cfg["pre"], aft_seq_length=cfg["T"] - cfg["pre"], total_length=cfg["T"],
        reverse_scheduled_sampling=0, decouple_beta=1.0,
    )  # fmt: skip
    net = getattr(module, CLASSES[name])(cfg["layers"], [cfg["hidden"]] * cfg["layers"], configs)
    shape = layout(net)
    drawn = draw_params(cfg["seed"], name, shape)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in drawn.items()}, strict=True)
    out = {}
    for kind, mask in masks.items():
        for m in net.modules():
            if hasattr(m, "convlstm_c"):
                m.convlstm_c = None  # MIM-S memory: a fresh state per sequence
        with torch.no_grad():
            pred, loss = net(fold(frames, cfg["patch"]), fold(mask, cfg["patch"]))
        expected = unfold(pred, cfg["patch"])
        out[f"{name}/{kind}/mask"] = mask.astype(np.uint8)
        out[f"{name}/{kind}/expected"] = expected
        if name == "predrnnv2":
            mse = float(np.mean((expected - frames[:, 1:]) ** 2))
            out[f"{name}/{kind}/decouple_loss"] = np.float64(loss.item() - mse)
    return shape, out


def make(cfg: dict) -> dict[str, np.ndarray]:
    b, t, c, h, w = cfg["batch"], cfg["T"], cfg["C"], cfg["H"], cfg["W"]
    frames = draw_frames(cfg["seed"], (b, t, c, h, w))
    steps = t - cfg["pre"] - 1
    mixed = np.random.default_rng([cfg["seed"], 100]).integers(0, 2, (b, steps, 1, 1, 1))
    masks = {"zero": np.zeros((b, steps, c, h, w)),
             "mixed": np.broadcast_to(mixed, (b, steps, c, h, w)).astype(np.float64)}  # fmt: skip
    arrays = {"meta/config": np.array(repr(cfg))}
    for name in cfg["models"]:
        shape, out = run_model(name, cfg, frames, masks)
        arrays[f"meta/layout/{name}"] = np.array(repr(shape))
        arrays |= out
    return arrays


def main() -> None:
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__.split("\n\n")[1])
    mirror = sys.argv[1]
    out_dir = Path(sys.argv[2]) if len(sys.argv) == 3 else REPO / "tests" / "fixtures"
    extract_openstl(mirror)
    torch.set_default_dtype(torch.float64)
    print(f"OpenSTL at {head_commit(mirror)}")
    for file, own in FIXTURES.items():
        cfg = {**BASE, **own, "openstl": head_commit(mirror)[:7]}
        save(str(out_dir / file), make(cfg))


if __name__ == "__main__":
    main()
