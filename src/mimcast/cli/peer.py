"""`mimcast bench --against-openstl PATH`: OpenSTL's own model beside mimcast's, one harness.

PATH is either a folder of OpenSTL's model files with flat imports (what the project's
`openstl_peer.sh` writes: mim_model.py, mim_modules.py, ...) or an OpenSTL checkout (its
`openstl` package is imported, which needs OpenSTL's own dependencies). Nothing of OpenSTL is
copied into mimcast: the user's files are imported from where they are.

The harness is the same for every implementation: batch and frames as given, bf16 autocast
(float32 master weights), channels_last weights, Adam, one training step = forward, the
model's own loss (OpenSTL: the loss its forward returns; mimcast: L2 plus the weighted
auxiliary loss, as the trainer computes it), backward, step; inference = the forecast from the
context frames without ground truth (OpenSTL: its forward with a zero mask). Everything runs
in one child process, interleaved round by round so that a slower or faster spell of a shared
machine falls on every implementation alike; the table gives medians and the range of the
per-round ratios.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mimcast.cli.bench import BenchConfig, _inputs, run_in_child, train_step
from mimcast.errors import ConfigError, MimcastError
from mimcast.machine import describe, one_line
from mimcast.models import build_model
from mimcast.models.layers import fold_patches
from mimcast.training.precision import autocast

PEER = {  # mimcast name -> OpenSTL module and class
    "mim": ("mim_model", "MIM_Model"),
    "predrnn": ("predrnn_model", "PredRNN_Model"),
    "convlstm": ("convlstm_model", "ConvLSTM_Model"),
    "predrnnpp": ("predrnnpp_model", "PredRNNpp_Model"),
    "predrnnv2": ("predrnnv2_model", "PredRNNv2_Model"),
}


def peer_class(path: Path, name: str) -> type:
    """OpenSTL's model class for `name`, imported from the user's folder or checkout."""
    if name not in PEER:
        raise ConfigError(f"bench --against-openstl: no OpenSTL counterpart of {name!r}")
    module, cls = PEER[name]
    path = Path(path).resolve()
    if (path / f"{module}.py").is_file():
        qualified = module
    elif (path / "openstl" / "models" / f"{module}.py").is_file():
        qualified = f"openstl.models.{module}"
    else:
        raise ConfigError(
            f"--against-openstl {path}: neither {module}.py (a flat copy, as openstl_peer.sh "
            "writes) nor openstl/models/ (an OpenSTL checkout) is there"
        )
    sys.path.insert(0, str(path))
    try:
        return getattr(importlib.import_module(qualified), cls)
    except Exception as e:  # noqa: BLE001 - the user's code: any failure is one line
        raise MimcastError(
            f"--against-openstl {path}: importing {qualified} failed ({type(e).__name__}: "
            f"{e}); a flat copy of OpenSTL's model files avoids its package's dependencies"
        ) from e


def _peer(cfg: BenchConfig, cls: type) -> torch.nn.Module:
    m = cfg.model
    configs = types.SimpleNamespace(
        in_shape=(cfg.seq_len, m.in_channels, m.height, m.width),
        patch_size=m.patch_size,
        filter_size=m.filter_size,
        stride=1,
        layer_norm=m.layer_norm,
        pre_seq_length=cfg.context_len,
        aft_seq_length=cfg.seq_len - cfg.context_len,
        total_length=cfg.seq_len,
        reverse_scheduled_sampling=0,
        decouple_beta=0.1,
    )
    torch.manual_seed(0)
    return cls(len(m.hidden), list(m.hidden), configs).to(memory_format=torch.channels_last)


def _patched(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, T, C, H, W) -> OpenSTL's (B, T, H/p, W/p, p*p*C), the same channel order."""
    return fold_patches(x, p).permute(0, 1, 3, 4, 2).contiguous()


def _peer_steps(cfg: BenchConfig, peer: torch.nn.Module) -> tuple[Callable, Callable]:
    frames, mask = _inputs(cfg)
    p = cfg.model.patch_size
    pf = _patched(frames, p)
    pmask = _patched(mask.expand(*mask.shape[:2], *frames.shape[2:]), p)
    opt = torch.optim.Adam(peer.parameters(), lr=1e-4)
    dev = frames.device

    def train() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(dev, "bf16-mixed"):
            _, loss = peer(pf, pmask)
        loss.backward()
        opt.step()

    def infer() -> None:
        with torch.no_grad(), autocast(dev, "bf16-mixed"):
            peer(pf, torch.zeros_like(pmask), return_loss=False)

    return train, infer


def _ours(cfg: BenchConfig, variant: str, compile_: bool) -> tuple[Callable, Callable]:
    from dataclasses import replace

    torch.manual_seed(0)
    model = build_model(replace(cfg.model, variant=variant)).to(cfg.device)
    model = model.to(memory_format=torch.channels_last).set_compile(compile_)
    frames, mask = _inputs(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    horizon = cfg.seq_len - cfg.context_len

    def train() -> None:
        train_step(model, opt, frames, mask, context_len=cfg.context_len, precision="bf16-mixed")

    def infer() -> None:
        with autocast(frames.device, "bf16-mixed"):
            model.predict(frames[:, : cfg.context_len], horizon)

    return train, infer


def _time(fn: Callable, dev: torch.device) -> float:
    from mimcast.cli.bench import seconds_per_call

    return seconds_per_call(fn, steps=1, warmup=0, device=dev)


def measure_against(cfg: BenchConfig, path: str, rounds: int, compile_: bool) -> dict[str, Any]:
    """In this process: every implementation, interleaved for `rounds` rounds."""
    impls = {"openstl": _peer_steps(cfg, _peer(cfg, peer_class(Path(path), cfg.model.name)))}
    for variant in ("paper", "openstl"):
        impls[f"mimcast-{variant}"] = _ours(cfg, variant, compile_=False)
        if compile_:
            impls[f"mimcast-{variant}-compiled"] = _ours(cfg, variant, compile_=True)
    dev = torch.device(cfg.device)
    for train, infer in impls.values():  # warm-up (and the compiles)
        for fn in (train, train, infer, infer):
            fn()
    times: dict[str, dict[str, list[float]]] = {k: {"train": [], "infer": []} for k in impls}
    for _ in range(rounds):
        for name, (train, infer) in impls.items():
            times[name]["train"].append(_time(train, dev))
            times[name]["infer"].append(_time(infer, dev))
    return _summary(cfg, times)


def _summary(cfg: BenchConfig, times: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": {}}
    peer = times["openstl"]
    for name, t in times.items():
        row = {}
        for kind in ("train", "infer"):
            ratios = [a / b for a, b in zip(peer[kind], t[kind])]
            row[f"{kind}_seq_s"] = cfg.batch / statistics.median(t[kind])
            row[f"{kind}_ratio"] = statistics.median(ratios)
            row[f"{kind}_ratio_range"] = (min(ratios), max(ratios))
        out["rows"][name] = row
    return out


def _child(cfg: dict, path: str, rounds: int, compile_: bool, results) -> None:
    try:
        results.put(("ok", measure_against(BenchConfig.from_dict(cfg), path, rounds, compile_)))
    except Exception as e:  # noqa: BLE001 - reported to the parent, one line
        results.put(("error", f"{type(e).__name__}: {e}"))


def run_against(cfg: BenchConfig, path: str, *, rounds: int, compile_: bool) -> dict:
    peer_class(Path(path), cfg.model.name)  # a bad PATH fails here, not in the child
    result = run_in_child(_child, (cfg.to_dict(), str(path), rounds, compile_), "side-by-side")
    result.update(config=cfg.to_dict(), machine=describe(cfg.device), rounds=rounds)
    return result


def format_against(r: dict[str, Any]) -> str:
    from mimcast.cli.bench import describe_config

    name = r["config"]["model"]["name"]
    lines = [
        f"{describe_config(r['config'])}; bf16 autocast + channels_last + Adam, "
        f"{r['rounds']} interleaved rounds (medians; ratio range in brackets)",
        f"machine: {one_line(r['machine'])}",
        "",
        "| implementation | train seq/s | infer seq/s | train vs OpenSTL | infer vs OpenSTL |",
        "|---|---|---|---|---|",
    ]
    for key, row in r["rows"].items():
        label = f"OpenSTL {PEER[name][1]}" if key == "openstl" else key.replace("-", " ", 1)
        lo_t, hi_t = row["train_ratio_range"]
        lo_i, hi_i = row["infer_ratio_range"]
        lines.append(
            f"| {label} | {row['train_seq_s']:.2f} | {row['infer_seq_s']:.2f} | "
            f"{row['train_ratio']:.2f}x [{lo_t:.2f}-{hi_t:.2f}] | "
            f"{row['infer_ratio']:.2f}x [{lo_i:.2f}-{hi_i:.2f}] |"
        )
    return "\n".join(lines)
