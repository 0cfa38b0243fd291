"""The run configuration: typed sections, presets and their precedence.

defaults < preset < --config FILE.yaml < flags and --set key=value.
An unknown key or a value of the wrong type is a ConfigError naming the key. The resolved
config is written into the run folder as config.yaml and, with the data's frame shape, is
enough to rebuild the model from a checkpoint alone.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mimcast.errors import ConfigError


@dataclass
class ModelSection:
    name: str = "mim"
    hidden: list[int] = field(default_factory=lambda: [64, 64, 64, 64])
    filter_size: int = 5
    patch_size: int = 4
    layer_norm: bool = True
    variant: str = "paper"
    mim_n: bool = True
    mim_s: bool = True


@dataclass
class DataSection:
    name: str = "mmnist"
    root: str | None = None
    options: dict = field(default_factory=dict)  # build_dataset options for every split
    eval_options: dict = field(default_factory=dict)  # extra options for val and test
    num_workers: int = 0


@dataclass
class TrainSection:
    steps: int = 100_000
    batch_size: int = 8
    lr: float = 1e-3
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    sampling: str = "linear"  # "linear", "reverse" or "none"
    eta_start: float = 1.0
    eta_decay: float = 2e-5
    reverse_s1: int = 25_000
    reverse_s2: int = 50_000
    reverse_alpha: float = 5_000.0
    reverse_time: bool = False  # also train on time-reversed sequences (reference code)
    val_every: int = 1_000
    val_sequences: int = 256
    checkpoint_every: int = 1_000
    log_every: int = 10
    seed: int = 0
    precision: str = "32"  # "32" or "bf16-mixed" (bf16 on CPU, bf16/fp16 on CUDA)
    device: str = "cpu"
    channels_last: bool = True
    checkpoint_steps: bool = False  # recompute each time step in backward: less memory
    on_nan: str = "stop"  # "stop": end the run naming the step; "skip": skip the batch


@dataclass
class EvalSection:
    split: str = "test"
    batch_size: int = 16
    num_sequences: int = 0  # 0 = the whole split
    thresholds: list[float] = field(default_factory=list)  # CSI/POD/FAR, in model units
    show: int = 4  # sequences drawn as strips and GIFs


@dataclass
class RunConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Section 5 of the paper: 4 layers x 64 channels, filter 5, L2 loss, Adam 1e-3, batch 8,
# 100,000 iterations, layer norm, scheduled sampling with eta falling 2e-5 per iteration.
PAPER = {"model": {"hidden": [64] * 4, "filter_size": 5, "layer_norm": True}}
PRESETS: dict[str, dict[str, Any]] = {
    # Sized for a 2-core CPU: learns Moving MNIST visibly in about 10 minutes (blurry is expected).
    "quick": {
        "model": {
            "name": "mim",
            "hidden": [32] * 4,
            "filter_size": 3,
            "patch_size": 4,
            "layer_norm": False,
        },
        "data": {"name": "mmnist", "options": {"seq_len": 20, "context_len": 10}},
        "train": {
            "steps": 450,
            "eta_decay": 1 / 300,  # scheduled sampling ends at step 300 instead of 50,000
            "val_every": 150,
            "val_sequences": 64,
            "checkpoint_every": 150,
            "precision": "bf16-mixed",
        },
        "eval": {"num_sequences": 256},
    },
    "mmnist": {**PAPER, "model": {**PAPER["model"], "patch_size": 4}, "data": {"name": "mmnist"}},
    "kth": {
        "model": {**PAPER["model"], "patch_size": 4},
        "data": {
            "name": "kth",
            # person 16 is held out for validation (the reference validates on the test persons,
            # which makes "best" checkpoints look better than they are)
            "options": {"seq_len": 20, "context_len": 10, "image_size": 128, "val_persons": [16]},
            "eval_options": {"seq_len": 30},  # trained 10 -> 10, tested 10 -> 20
        },
    },
    "taxibj": {
        "model": {**PAPER["model"], "patch_size": 2},
        # two weeks before the test period are held out for validation (not the test weeks)
        "data": {"name": "taxibj", "options": {"seq_len": 8, "context_len": 4, "val_days": 14}},
        "train": {"sampling": "none"},
    },
}
DEFAULT_PRESET = "quick"


def _merge(base: dict, override: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if (
            isinstance(value, dict)
            and isinstance(out.get(key), dict)
            and key
            not in (
                "options",
                "eval_options",
            )
        ):
            out[key] = _merge(out[key], value, f"{where}{key}.")
        elif isinstance(value, dict) and key in ("options", "eval_options"):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check(value: Any, hint: Any, key: str) -> Any:
    """Value converted to the annotated type, or a ConfigError naming the key."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check(value, inner, key)
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key} must be a list, got {value!r}")
        return [_check(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key} must be a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key {key} must be a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {hint} for {key}")


def _build(cls: type, data: dict, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where.rstrip('.') or 'root'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown config key {where}{unknown[0]} (valid keys in "
            f"{where.rstrip('.') or 'the config'}: {', '.join(names)})"
        )
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, data[name], f"{where}{name}.")
        else:
            kwargs[name] = _check(data[name], hint, f"{where}{name}")
    return cls(**kwargs)


def parse_set(items: list[str]) -> dict:
    """`--set train.lr=0.0005 model.hidden=[32,32]` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {e}") from e
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def read_config_file(path: str | Path) -> dict:
    """A YAML config file, read with yaml.safe_load (no code in it is ever run)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {p} must hold a mapping of sections, got {type(data).__name__}"
        )
    return data


def resolve_config(
    preset: str | None = DEFAULT_PRESET,
    file: str | Path | None = None,
    overrides: dict | None = None,
) -> RunConfig:
    """Apply defaults < preset < file < overrides and validate every key and type."""
    merged = RunConfig().to_dict()
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
        merged = _merge(merged, PRESETS[preset])
    for layer in (read_config_file(file) if file else None, overrides):
        if layer:
            _build(RunConfig, _merge(RunConfig().to_dict(), layer), "")  # name bad keys early
            merged = _merge(merged, layer)
    cfg = _build(RunConfig, merged, "")
    validate(cfg)
    return cfg


def config_from_dict(data: dict) -> RunConfig:
    """A RunConfig from a resolved dict (e.g. a run folder's config.yaml)."""
    cfg = _build(RunConfig, data, "")
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    t = cfg.train
    checks = [
        (t.steps >= 1, "train.steps must be >= 1"),
        (t.batch_size >= 1, "train.batch_size must be >= 1"),
        (t.lr > 0, "train.lr must be > 0"),
        (t.grad_clip >= 0, "train.grad_clip must be >= 0"),
        (
            t.sampling in ("linear", "reverse", "none"),
            "train.sampling must be linear, reverse or none",
        ),
        (
            t.precision in ("32", "bf16-mixed", "16-mixed"),
            "train.precision must be 32, bf16-mixed or 16-mixed",
        ),
        (t.device == "cpu" or t.device.startswith("cuda"), "train.device must be cpu or cuda[:N]"),
        (t.on_nan in ("stop", "skip"), "train.on_nan must be stop or skip"),
        (
            t.val_every >= 1 and t.checkpoint_every >= 1 and t.log_every >= 1,
            "train.val_every, checkpoint_every and log_every must be >= 1",
        ),
        (cfg.eval.batch_size >= 1, "eval.batch_size must be >= 1"),
        (cfg.eval.split in ("train", "val", "test"), "eval.split must be train, val or test"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def write_config(cfg: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
