"""Loading weights into a model, strictly: every name and shape must fit, every value be finite,
or one line. A safetensors file is checked by its header alone, before the model is built."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor, nn

from mimcast.errors import CheckpointError

# More than any model mimcast trains by orders of magnitude (the paper's are ~10^7): a config
# asking for more is damaged or edited, and building it would take minutes and gigabytes.
MAX_PARAMETERS = 10**9
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}  # safetensors' names


def _check_fit(found: dict[str, tuple], expected: dict[str, tuple], where: str) -> None:
    """Tensor shapes `found` in a file against the model's `expected` ones, by name."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {where} does not fit this model: "
            + (f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}")
            + f" ({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for k, shape in found.items():
        if shape != expected[k]:
            raise CheckpointError(
                f"checkpoint {where}: {k} has shape {shape}, the model expects {expected[k]}"
            )


def _shapes(state: dict[str, Tensor]) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state.items()}


def load_weights(model: nn.Module, state_dict: dict[str, Tensor], where: str) -> None:
    """load_state_dict with a one-line error for missing, unexpected, mis-shaped or
    non-finite tensors."""
    _check_fit(_shapes(state_dict), _shapes(model.state_dict()), where)
    for k, v in state_dict.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"checkpoint {where}: {k} holds NaN or inf values")
    model.load_state_dict(state_dict)


def check_weights_file(path: Path, shell: nn.Module) -> None:
    """Whether the safetensors file at `path` fits `shell`, the model built on the meta device
    (shapes without memory): every tensor's name, shape and dtype from the file's header, and
    the model's size, before anything real is built or read."""
    try:
        with safe_open(str(path), framework="pt") as f:  # the header only (memory-mapped)
            header = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118 - not a dict
            found = {k: tuple(s.get_shape()) for k, s in header.items()}
            dtypes = {k: s.get_dtype() for k, s in header.items()}
    except Exception as e:  # noqa: BLE001 - safetensors raises several kinds on bad files
        raise CheckpointError(f"cannot read {path}: {' '.join(str(e).split())}") from e
    _check_fit(found, _shapes(shell.state_dict()), str(path))
    wrong = sorted(k for k, d in dtypes.items() if d not in FLOAT_DTYPES)
    if wrong:
        raise CheckpointError(f"checkpoint {path}: {wrong[0]} is {dtypes[wrong[0]]}, not floats")
    n = sum(p.numel() for p in shell.parameters())
    if n > MAX_PARAMETERS:
        raise CheckpointError(
            f"{path}: a model of {n:.3g} parameters, more than mimcast loads "
            f"({MAX_PARAMETERS:.0e}): a damaged or edited config?"
        )
