"""The run configuration: typed sections, their valid values, and how layers of them merge.

defaults < preset < --config FILE.yaml < flags and --set key=value, merged by the one rule of
`settings.merge`. Every key is typed and range-checked where it is defined (`setting(...)`);
an unknown key, a wrong type or an out-of-range value is a ConfigError naming the key. The
`model` section is a ModelConfig without the frame shape, which comes from the data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from mimcast.data.registry import dataset_class
from mimcast.errors import ConfigError, DataError
from mimcast.evaluation.baselines import CHOICES as BASELINE_CHOICES
from mimcast.models import ModelConfig
from mimcast.models.config import FRAME_FIELDS
from mimcast.models.registry import check_buildable
from mimcast.settings import build_section, merge, setting, to_plain, validate
from mimcast.training.distributed import check_device
from mimcast.training.presets import DEFAULT_PRESET, PRESETS
from mimcast.training.sampling import SamplingSchedule
from mimcast.training.schedules import SCHEDULES

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
MAX_SEED = 2**32 - 1  # numpy and torch accept it everywhere


@dataclass(frozen=True)
class DataSection:
    SECTION: ClassVar[str] = "data"

    name: str = setting("mmnist", doc="a registered data set (mimcast.data.list_datasets())")
    root: str | None = setting(None, doc="the data set's file or folder")
    options: dict = setting({}, doc="options of the data set, for every split")
    eval_options: dict = setting({}, doc="extra options for the val and test splits")
    num_workers: int = setting(0, low=0, high=256)

    def __post_init__(self) -> None:
        validate(self, self.SECTION)


# the papers train on L2; L1 added sharpens (PredRNN-V2's code); MCNet adds the gradient
# difference loss (training/losses.py)
FRAME_LOSSES = ("mse", "mse+l1", "mse+gdl")


@dataclass(frozen=True)
class TrainSection:
    SECTION: ClassVar[str] = "train"

    steps: int = setting(100_000, low=1, high=10**9)
    batch_size: int = setting(8, low=1, high=1 << 16)
    lr: float = setting(1e-3, above=0.0, high=10.0, doc="the (peak) learning rate of Adam")
    loss: str = setting(
        "mse", choices=FRAME_LOSSES, doc="the frame loss: L2, L2 + L1, or L2 + gradient difference"
    )
    lr_schedule: str = setting("constant", choices=SCHEDULES, doc="see training/schedules.py")
    warmup_steps: int = setting(0, low=0)
    lr_min: float = setting(0.0, low=0.0, high=1.0, doc="final lr, as a fraction of train.lr")
    ema: float = setting(0.0, low=0.0, high=0.99999, doc="weight-average decay; 0 = off")
    grad_clip: float = setting(1.0, low=0.0, doc="max gradient norm; 0 disables clipping")
    decouple_beta: float = setting(0.1, low=0.0, doc="weight of PredRNN-V2's decoupling loss")
    sampling: SamplingSchedule = field(default_factory=SamplingSchedule)
    reverse_time: bool = setting(False, doc="also train on time-reversed sequences (reference)")
    val_every: int = setting(1_000, low=1)
    val_sequences: int = setting(256, low=1)
    checkpoint_every: int = setting(1_000, low=1)
    log_every: int = setting(10, low=1)
    seed: int = setting(0, low=0, high=MAX_SEED)
    precision: str = setting("32", choices=PRECISIONS, doc="bf16 on CPU; bf16/fp16 on CUDA")
    device: str = setting("auto", doc="auto (CUDA when available), cpu, cuda or cuda:N")
    channels_last: bool = setting(True)
    compile: bool = setting(False, doc="torch.compile the training step (cached on disk)")
    grad_checkpointing: bool = setting(False, doc="recompute each step in backward: less memory")
    on_nan: str = setting("stop", choices=("stop", "skip"))

    def __post_init__(self) -> None:
        validate(self, self.SECTION)
        check_device(self.device, "train.device")


@dataclass(frozen=True)
class EvalSection:
    SECTION: ClassVar[str] = "eval"

    split: str = setting("test", choices=("train", "val", "test"))
    batch_size: int = setting(16, low=1, high=1 << 16)
    num_sequences: int = setting(0, low=0, doc="0 = the whole split")
    thresholds: list[float] = setting([], doc="CSI/POD/FAR thresholds, in model units")
    show: int = setting(4, low=0, high=64, doc="sequences drawn as strips and GIFs")
    baselines: str = setting(
        "all", choices=BASELINE_CHOICES, doc="trivial forecasts scored beside the model"
    )  # all: those whose library is installed (flow needs OpenCV)

    def __post_init__(self) -> None:
        validate(self, self.SECTION)


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def to_dict(self) -> dict[str, Any]:
        """Plain sections for config.yaml; the model section without the frame shape."""
        d = to_plain(self)
        d["model"] = self.model.to_dict(frames=False)
        return d

    def replace(self, **sections: dict[str, Any]) -> RunConfig:
        """A copy with some keys of some sections changed: replace(data={"name": "kth"})."""
        return config_from_dict(merge(self.to_dict(), sections))


def config_from_dict(data: Any) -> RunConfig:
    """A RunConfig from plain sections (a run folder's config.yaml, merged layers)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a run config must be a mapping of sections, got {data!r}")
    sections = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError(
            f"unknown config key {unknown[0]} (valid sections: {', '.join(sorted(sections))})"
        )
    model = build_section(ModelConfig, data.get("model", {}), "model", exclude=FRAME_FIELDS)
    check_buildable(model)
    return RunConfig(
        model=model,
        data=build_section(DataSection, data.get("data", {}), "data"),
        train=build_section(TrainSection, data.get("train", {}), "train"),
        eval=build_section(EvalSection, data.get("eval", {}), "eval"),
    )


def parse_set(items: list[str]) -> dict:
    """`--set train.lr=0.0005 model.hidden=[32,32]` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set expects key=value (e.g. train.lr=5e-4), got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {e}") from e
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part} was already given a value")
            node = child
        node[parts[-1]] = value  # the same key again: the later value wins, as with flags
    return out


def read_config_file(path: str | Path) -> dict:
    """A YAML config file, read with yaml.safe_load (no code in it is ever run)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {p} is a folder, not a YAML file")
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p} is not a text (UTF-8 YAML) file: {e}") from e
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
    """Apply defaults < preset < the data kind's run defaults < file < overrides and validate
    every key, type and range.

    A preset's data options are those of its own data set (the quick preset's are Moving
    MNIST's): for other data (`--data video`) they are dropped, so the data set's own defaults
    hold, and the data set's `run_defaults` (video: a residual model) come in above the preset.
    """
    merged = RunConfig().to_dict()
    layers = [read_config_file(file) if file else None, overrides]
    for layer in layers:
        if layer:
            config_from_dict(merge(RunConfig().to_dict(), layer))  # name its bad keys first
    named = [layer["data"]["name"] for layer in layers if layer and "name" in layer.get("data", {})]
    data_name = named[-1] if named else None
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
        merged = merge(merged, _preset_for(PRESETS[preset], data_name))
    for layer in [data_run_defaults(data_name or merged["data"]["name"]), *layers]:
        if layer:
            merged = merge(merged, layer)
    return config_from_dict(merged)


def _preset_for(preset: dict, data_name: str | None) -> dict:
    """The preset without its data options when the run is on another data set than its own."""
    own = preset.get("data", {}).get("name", RunConfig().data.name)
    if data_name is None or data_name == own:
        return preset
    data = {k: v for k, v in preset.get("data", {}).items() if k not in DATA_OPTION_KEYS}
    return {**preset, "data": data}


DATA_OPTION_KEYS = ("options", "eval_options")


def data_run_defaults(name: str) -> dict:
    """The run defaults a data set declares for itself (`SequenceDataset.run_defaults`), {} for
    an unknown name (refused later, with the list of data sets)."""
    try:
        return dataset_class(name).run_defaults
    except DataError:
        return {}
