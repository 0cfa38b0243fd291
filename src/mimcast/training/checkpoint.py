"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

Layout of a checkpoints folder:
    step-0000200/tensors.safetensors   model weights ("model.*": the moving average when the
                                       run keeps one), the raw training weights then ("raw.*"),
                                       optimizer moments ("optim.*"), the torch RNG ("rng.*")
    step-0000200/state.json            step, model config, optimizer hyperparameters, best
                                       metric, sha256 of the tensors file
    last.json, best.json               pointers {"dir": "step-0000200", "step": 200}

A step folder is written under a temporary name and renamed into place (a step saved twice
gets a new folder, step-000200-2); the pointer is then replaced with os.replace. A kill at any
moment leaves each pointer naming a complete folder; a failed write (a full disk) raises
StorageError and leaves the previous checkpoint as it was.
Nothing is unpickled: a tampered or truncated file fails its hash or its parse and is refused.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from mimcast.errors import CheckpointError, StorageError
from mimcast.fs import (
    atomic_write_json,
    fsync_dir,
    new_file_mode,
    storage_error,
    write_durably,
)
from mimcast.models import ModelConfig, build_model
from mimcast.models.rollout import Forecaster
from mimcast.models.weights import load_weights

TENSORS = "tensors.safetensors"
STATE = "state.json"
FORMAT = "mimcast-checkpoint-1"
POINTERS = ("last", "best")
_STEP_DIR = re.compile(r"step-\d{7}(-\d+)?")
_TEMP = re.compile(r"\.(step-\d{7}(-\d+)?\.tmp-\d+|[a-z]+\.tmp-\d+\.json)")


@dataclass
class Checkpoint:
    """What a checkpoint holds once read."""

    step: int
    model_config: ModelConfig
    model: dict[str, Tensor]
    optimizer: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    rng: Tensor | None = None  # the torch RNG state when it was saved
    raw: dict[str, Tensor] | None = None  # the raw weights, when `model` is their average
    path: Path | None = None


def is_checkpoint_file(rel: Path) -> bool:
    """Whether a path inside a checkpoints/ folder is one mimcast writes (for --overwrite)."""
    parts = rel.parts
    if len(parts) == 1:
        return parts[0] in {f"{p}.json" for p in POINTERS} or bool(_TEMP.fullmatch(parts[0]))
    if len(parts) == 2 and (_STEP_DIR.fullmatch(parts[0]) or _TEMP.fullmatch(parts[0])):
        return parts[1] in (TENSORS, STATE)
    return False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def _tensors(
    model: Forecaster, optimizer: torch.optim.Optimizer | None, raw: nn.Module | None
) -> tuple[dict, Any]:
    """Everything a checkpoint stores as tensors, and the optimizer's JSON part."""
    tensors = {}
    for prefix, module in (("model", model), ("raw", raw)):
        for name, p in (module.state_dict() if module is not None else {}).items():
            if p.is_floating_point() and not torch.isfinite(p).all():
                raise CheckpointError(f"refusing to save: weight {name} is not finite")
            tensors[f"{prefix}.{name}"] = p.detach().contiguous().cpu()
    opt_meta = None
    if optimizer is not None:
        opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    return tensors, opt_meta


def save_checkpoint(
    directory: Path,
    *,
    step: int,
    model: Forecaster,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    pointers: tuple[str, ...] = ("last",),
    raw: nn.Module | None = None,
) -> Path:
    """Write checkpoints/step-NNNNNNN atomically and point `pointers` (last/best) at it.
    `raw`: the raw training weights, when `model` holds their moving average.

    Refuses (CheckpointError) to save non-finite weights, so NaN never replaces a good state;
    a failing disk is a StorageError and leaves the previous checkpoint as it was.
    """
    try:
        tensors, opt_meta = _tensors(model, optimizer, raw)
    except CheckpointError as e:
        raise CheckpointError(f"step {step}: {e}") from e
    directory.mkdir(parents=True, exist_ok=True)
    # The same step saved again (e.g. on a stop signal) goes to a fresh folder: the folder a
    # pointer names is never moved or removed before the pointer names another complete one.
    name, k = f"step-{step:07d}", 1
    while (directory / name).exists():
        k += 1
        name = f"step-{step:07d}-{k}"
    state = {
        "format": FORMAT,
        "step": step,
        "model_config": model.config.to_dict(),
        "optimizer": opt_meta,
        "extra": extra or {},
    }
    try:
        _write_step_folder(directory, name, tensors, state)
        for pointer in pointers:
            atomic_write_json(directory / f"{pointer}.json", {"dir": name, "step": step})
    except StorageError as e:
        kept = _pointed(directory)
        raise StorageError(
            f"cannot write the checkpoint of step {step} in {directory}: {e}; "
            + (f"the previous checkpoint ({', '.join(kept)}) is kept" if kept else "none is kept")
        ) from e
    _collect_garbage(directory)
    return directory / name


def _write_step_folder(directory: Path, name: str, tensors: dict, state: dict) -> None:
    """tensors + state.json into a temporary folder, fsynced, renamed to `name`."""
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            save_file(tensors, str(tmp / TENSORS))
            os.chmod(tmp / TENSORS, new_file_mode())  # safetensors writes 0600 whatever the umask
        except Exception as e:  # noqa: BLE001 - on a full disk safetensors raises SafetensorError
            if isinstance(e, OSError):
                raise
            raise OSError(errno.EIO, str(e)) from e
        state["sha256"] = _sha256(tmp / TENSORS)
        write_durably(tmp / STATE, json.dumps(state, indent=1).encode())
        with open(tmp / TENSORS, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, directory / name)
        fsync_dir(directory)
    except OSError as e:  # a full disk, a read-only folder: remove what was begun
        shutil.rmtree(tmp, ignore_errors=True)
        raise storage_error(tmp, e) from e


def _pointed(directory: Path) -> list[str]:
    """Step folders named by the pointers (last, best) that exist."""
    keep = []
    for pointer in POINTERS:
        try:
            name = resolve_checkpoint(directory, pointer).name
        except CheckpointError:
            continue
        if name not in keep:
            keep.append(name)
    return keep


def _collect_garbage(directory: Path) -> None:
    """Remove step folders no pointer names (and leftovers of interrupted writes)."""
    keep = set(_pointed(directory))
    for child in directory.iterdir():
        if child.is_symlink() or child.name in keep:
            continue
        if child.is_dir() and (_STEP_DIR.fullmatch(child.name) or _TEMP.fullmatch(child.name)):
            if all(is_checkpoint_file(Path(child.name, f.name)) for f in child.iterdir()):
                shutil.rmtree(child, ignore_errors=True)
        elif child.is_file() and _TEMP.fullmatch(child.name):
            child.unlink(missing_ok=True)  # a pointer write cut short


def resolve_checkpoint(directory: Path, which: str = "last") -> Path:
    """The step folder for `which` (last/best) in a checkpoints folder, or a step folder."""
    p = Path(directory)
    if (p / STATE).is_file():
        return p
    pointer = p / f"{which}.json"
    if not pointer.is_file():
        raise CheckpointError(f"no '{which}' checkpoint in {p} (expected {pointer})")
    try:
        name = json.loads(pointer.read_text())["dir"]
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise CheckpointError(f"checkpoint pointer {pointer} is damaged: {e}") from e
    if not isinstance(name, str) or not _STEP_DIR.fullmatch(name):
        raise CheckpointError(f"checkpoint pointer {pointer} is damaged: it names {name!r}")
    if not (p / name).is_dir():
        raise CheckpointError(f"checkpoint pointer {pointer} names a missing folder {name!r}")
    return p / name


def _read_state(state_path: Path) -> dict[str, Any]:
    try:
        state = json.loads(state_path.read_text())
    except (ValueError, OSError) as e:
        raise CheckpointError(f"checkpoint {state_path} is not valid JSON: {e}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{state_path} is not a mimcast checkpoint")
    kinds = {"step": int, "model_config": dict, "sha256": str, "extra": dict}
    for key, kind in kinds.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise CheckpointError(f"checkpoint {state_path} is damaged: bad or missing {key!r}")
    if state.get("optimizer") is not None and not isinstance(state["optimizer"], dict):
        raise CheckpointError(f"checkpoint {state_path} is damaged: bad 'optimizer'")
    return state


def load_checkpoint(directory: Path, which: str = "last") -> Checkpoint:
    """Read and verify a checkpoint (a checkpoints folder and a pointer, or a step folder)."""
    folder = resolve_checkpoint(directory, which)
    state_path, tensor_path = folder / STATE, folder / TENSORS
    if not tensor_path.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {TENSORS}")
    state = _read_state(state_path)
    if _sha256(tensor_path) != state["sha256"]:
        raise CheckpointError(
            f"checkpoint {tensor_path} does not match its recorded hash (truncated or modified)"
        )
    try:
        tensors = load_file(str(tensor_path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types on bad files
        raise CheckpointError(f"cannot read {tensor_path}: {e}") from e
    try:
        model_config = ModelConfig.from_dict(state["model_config"])
        optimizer = None
        if state.get("optimizer") is not None:
            optimizer = _join_optimizer(tensors, state["optimizer"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {state_path} is damaged: {e}") from e
    return Checkpoint(
        step=state["step"],
        model_config=model_config,
        model=_prefixed(tensors, "model."),
        optimizer=optimizer,
        extra=state["extra"],
        rng=tensors.get("rng.torch"),
        path=folder,
        raw=_prefixed(tensors, "raw.") or None,
    )


def _prefixed(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def model_from_checkpoint(ckpt: Checkpoint) -> Forecaster:
    """Rebuild the checkpoint's model from its saved ModelConfig and load its weights."""
    model = build_model(ckpt.model_config)
    load_weights(model, ckpt.model, str(ckpt.path))
    return model
