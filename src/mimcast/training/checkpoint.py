"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

Layout inside a run folder:
    checkpoints/step-000200/tensors.safetensors   model weights ("model.*"), optimizer moments
                                                  ("optim.*") and the torch RNG state ("rng.*")
    checkpoints/step-000200/state.json            step, model config, optimizer hyperparameters,
                                                  numpy/python RNG, best metric, sha256 of the
                                                  tensors file
    checkpoints/last.json, checkpoints/best.json  pointers {"dir": "step-000200"}

A step folder is written under a temporary name and renamed into place (a step saved twice
gets a new folder, step-000200-2); the pointer is then replaced with os.replace. A kill at any
moment leaves each pointer naming a complete folder; a failed write (a full disk) raises
CheckpointError and leaves the previous checkpoint as it was.
Nothing is unpickled: a tampered or truncated file fails its hash or its parse and is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from mimcast.errors import CheckpointError
from mimcast.models import ModelConfig, build_model
from mimcast.models.rollout import Forecaster

TENSORS = "tensors.safetensors"
STATE = "state.json"
FORMAT = "mimcast-checkpoint-1"


@dataclass
class Checkpoint:
    """What a checkpoint holds once read."""

    step: int
    model_config: ModelConfig
    model: dict[str, Tensor]
    optimizer: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _split_optimizer(opt_state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Optimizer state_dict -> (tensors for safetensors, JSON-able rest)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"optim.{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, sc in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(sc)
    return {"state": dict(sorted(state.items())), "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: Path,
    step: int,
    model: Forecaster,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    pointers: tuple[str, ...] = ("last",),
) -> Path:
    """Write checkpoints/step-NNNNNN atomically and point `pointers` (last/best) at it.

    Refuses (CheckpointError) to save non-finite weights, so NaN never replaces a good state.
    """
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise CheckpointError(f"refusing to save step {step}: weight {name} is not finite")
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    opt_meta = None
    if optimizer is not None:
        opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    name = f"step-{step:07d}"
    # The same step saved again (e.g. on a stop signal) goes to a fresh folder: the folder a
    # pointer names is never moved or removed before the pointer names another complete one.
    k = 1
    while (directory / name).exists():
        k += 1
        name = f"step-{step:07d}-{k}"
    final = directory / name
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        save_file(tensors, str(tmp / TENSORS))
        state = {
            "format": FORMAT,
            "step": step,
            "model_config": model.config.to_dict(),
            "optimizer": opt_meta,
            "extra": extra or {},
            "sha256": _sha256(tmp / TENSORS),
        }
        (tmp / STATE).write_text(json.dumps(state, indent=1))
        for f in (tmp / TENSORS, tmp / STATE):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(directory)
        for pointer in pointers:
            _atomic_write_text(
                directory / f"{pointer}.json", json.dumps({"dir": name, "step": step})
            )
    except OSError as e:  # a full disk, a read-only folder: keep what was there, say so
        shutil.rmtree(tmp, ignore_errors=True)
        kept = _pointed(directory)
        raise CheckpointError(
            f"cannot write the checkpoint of step {step} in {directory}: "
            f"{e.strerror or e}; "
            + (f"the previous checkpoint ({', '.join(kept)}) is kept" if kept else "none is kept")
        ) from e
    _collect_garbage(directory)
    return final


def _pointed(directory: Path) -> list[str]:
    """Step folders named by the pointers (last, best) that exist."""
    keep = []
    for pointer in ("last", "best"):
        p = directory / f"{pointer}.json"
        if p.is_file():
            with contextlib.suppress(ValueError, KeyError, TypeError, OSError):
                name = json.loads(p.read_text())["dir"]
                if name not in keep and (directory / name).is_dir():
                    keep.append(name)
    return keep


def _collect_garbage(directory: Path) -> None:
    """Remove step folders no pointer names (and leftovers of interrupted writes)."""
    keep = set(_pointed(directory))
    for child in directory.iterdir():
        if child.is_dir() and child.name.startswith(("step-", ".step-")) and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
        elif child.is_file() and child.name.startswith(".") and ".json.tmp-" in child.name:
            child.unlink(missing_ok=True)  # a pointer write cut short


def resolve_checkpoint(run_or_ckpt: Path, which: str = "last") -> Path:
    """The step folder for `which` (last/best) in a run folder, or a step folder itself."""
    p = Path(run_or_ckpt)
    if (p / STATE).is_file():
        return p
    directory = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    pointer = directory / f"{which}.json"
    if not pointer.is_file():
        raise CheckpointError(f"no '{which}' checkpoint in {p} (expected {pointer})")
    try:
        name = json.loads(pointer.read_text())["dir"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint pointer {pointer} is damaged: {e}") from e
    if "/" in name or name.startswith(".") or not (directory / name).is_dir():
        raise CheckpointError(f"checkpoint pointer {pointer} names a missing folder {name!r}")
    return directory / name


def load_checkpoint(path: Path, which: str = "last") -> Checkpoint:
    """Read and verify a checkpoint (a run folder, checkpoints/ folder or step folder)."""
    folder = resolve_checkpoint(path, which)
    state_path, tensor_path = folder / STATE, folder / TENSORS
    if not tensor_path.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {TENSORS}")
    try:
        state = json.loads(state_path.read_text())
    except (ValueError, OSError) as e:
        raise CheckpointError(f"checkpoint {state_path} is not valid JSON: {e}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{state_path} is not a mimcast checkpoint")
    if _sha256(tensor_path) != state.get("sha256"):
        raise CheckpointError(
            f"checkpoint {tensor_path} does not match its recorded hash (truncated or modified)"
        )
    try:
        tensors = load_file(str(tensor_path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types on bad files
        raise CheckpointError(f"cannot read {tensor_path}: {e}") from e
    try:
        model_config = ModelConfig.from_dict(state["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {state_path} has an invalid model config: {e}") from e
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    optimizer = None
    if state.get("optimizer") is not None:
        optimizer = _join_optimizer(tensors, state["optimizer"])
    extra = dict(state.get("extra", {}))
    if "rng.torch" in tensors:
        extra["torch_rng"] = tensors["rng.torch"]
    return Checkpoint(state["step"], model_config, model_sd, optimizer, extra, folder)


def load_model(path: Path, which: str = "best", device: str = "cpu") -> Forecaster:
    """Rebuild a model from a checkpoint alone (its saved ModelConfig) and load its weights.

    In a run folder the checkpoint must be of the run's own model (model.json): a checkpoint
    copied in from another run is refused rather than evaluated under this run's name.
    """
    ckpt = load_checkpoint(path, which)
    run_model = Path(path) / "model.json"
    if run_model.is_file():
        try:
            expected = ModelConfig.from_dict(json.loads(run_model.read_text()))
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{run_model} is damaged: {e}") from e
        if expected != ckpt.model_config:
            got = ckpt.model_config
            raise CheckpointError(
                f"checkpoint {ckpt.path} is of another model ({got.name}, hidden "
                f"{list(got.hidden)}, frames {(got.in_channels, got.height, got.width)}) than "
                f"the run in {path} ({expected.name}, hidden {list(expected.hidden)}, frames "
                f"{(expected.in_channels, expected.height, expected.width)})"
            )
    model = build_model(ckpt.model_config)
    load_weights(model, ckpt.model, str(ckpt.path))
    return model.to(device).eval()


def load_weights(model: nn.Module, state_dict: dict[str, Tensor], where: str) -> None:
    """load_state_dict with a one-line error for missing, unexpected or mis-shaped tensors."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(ours))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {where} does not fit this model: "
            + (f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}")
            + f" ({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for k, v in state_dict.items():
        if tuple(v.shape) != tuple(ours[k].shape):
            raise CheckpointError(
                f"checkpoint {where}: {k} has shape {tuple(v.shape)}, the model expects "
                f"{tuple(ours[k].shape)}"
            )
    model.load_state_dict(state_dict)
