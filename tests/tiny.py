"""The tiny run every run-level test uses: a 2-layer MIM of 4 channels on 32x32 Moving MNIST.

Tests take it as a config (`tiny_config`) or as --set items for the CLI (`tiny_sets`), with
their own changes merged on top, so that one place says what "a tiny run" is.
"""

from __future__ import annotations

import json

from mimcast.settings import merge
from mimcast.training.config import RunConfig, resolve_config

TINY = {
    "model": {"hidden": [4, 4], "filter_size": 3},
    "data": {"options": {"num_sequences": 16, "canvas": 32, "seq_len": 6, "context_len": 3}},
    "train": {
        "lr": 1e-3,  # constant, whatever the quick preset's recipe: runs cut and resumed
        "lr_schedule": "constant",  # at other step counts stay comparable
        "batch_size": 4,
        "val_every": 2,
        "val_sequences": 4,
        "checkpoint_every": 2,
        "log_every": 1,
        "precision": "32",
        "sampling": {"eta_decay": 0.1},
    },
    "eval": {"batch_size": 4, "num_sequences": 4, "show": 1},
}


def tiny_dict(changes: dict | None = None) -> dict:
    return merge(TINY, changes or {})


def tiny_config(steps: int, changes: dict | None = None) -> RunConfig:
    """The tiny run of `steps` steps (on the quick preset, with `changes` merged on top)."""
    return resolve_config("quick", None, merge(tiny_dict(changes), {"train": {"steps": steps}}))


def _flatten(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not key.startswith("data.options"):
            out += _flatten(v, key + ".")
        elif isinstance(v, dict):  # data.options: one item per option
            out += [f"{key}.{ok}={json.dumps(ov)}" for ok, ov in v.items()]
        else:
            out.append(f"{key}={json.dumps(v)}")
    return out


def tiny_sets(changes: dict | None = None) -> list[str]:
    """The tiny run as `--set` items for the command line."""
    return _flatten(tiny_dict(changes))
