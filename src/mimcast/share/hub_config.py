"""The files of a Hub folder and the check of its config.json, before any model is built.

config.json is {"model_config": ModelConfig, "data": DataSpec as a dict, plus "video_fit" for
a model trained on videos}. Every value must be one mimcast could have written: no unknown key
at either level, the model's frames given and equal to the data's frame shape, a finite value
range with low < high, a context length of at least one frame, one units scale and offset or
one per channel, a fit mimcast knows. The weights are then checked by their header against
the model on the meta device (Forecaster.from_pretrained), so that nothing is built from a
folder that does not hold together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mimcast.data import DataSpec
from mimcast.data.video import FITS
from mimcast.errors import CheckpointError, ConfigError
from mimcast.models import ModelConfig

CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
FILES = (CONFIG, WEIGHTS, CARD)
KEYS = ("model_config", "data")
VIDEO_FIT = "video_fit"  # under data: how the training videos' frames were fitted (crop/resize)


def read_hub_config(folder: Path) -> dict:
    """config.json of a model folder, checked strictly: {"model_config": ModelConfig,
    "data": dict or None}."""
    path = folder / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is missing or not valid JSON: {e}") from e
    if not isinstance(config, dict) or "model_config" not in config:
        raise CheckpointError(f"{path} is not a mimcast model config (no model_config)")
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise CheckpointError(f"{path}: unknown key(s) {', '.join(unknown)}")
    try:
        model = ModelConfig.from_dict(config["model_config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from e
    if not model.has_frames:
        raise CheckpointError(f"{path}: model_config has no in_channels, height and width")
    if config.get("data") is not None:
        check_data(config["data"], model, path)
    return {"model_config": model, "data": config.get("data")}


def check_data(data: Any, model: ModelConfig, path: Path) -> None:
    """The `data` section of config.json, refused (one line) when a value is one mimcast would
    not have written or contradicts the model."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: data must be a JSON object, got {type(data).__name__}")
    spec = DataSpec.from_dict(data, f"{path} (data)")
    written = {**spec.to_dict(), VIDEO_FIT: data.get(VIDEO_FIT)}
    unknown = sorted(set(data) - set(written))
    if unknown:
        raise CheckpointError(f"{path}: unknown key(s) under data: {', '.join(unknown)}")
    _check_values(spec, data.get(VIDEO_FIT), model, path)
    for key, value in data.items():  # what the spec made of a value is what was written
        if value != written[key]:  # (no 1.7 read as 1 frame, no "0" as 0.0)
            raise CheckpointError(f"{path}: data.{key} = {json.dumps(value)} is not a valid value")


def _check_values(spec: DataSpec, fit: Any, model: ModelConfig, path: Path) -> None:
    """What the spec cannot know alone (DataSpec.from_dict checked its own values)."""
    frames = (model.in_channels, model.height, model.width)
    if spec.frame_shape != frames:
        raise CheckpointError(
            f"{path}: data.frame_shape {list(spec.frame_shape)} contradicts the model's frames "
            f"{list(frames)} (in_channels, height, width)"
        )
    if fit is not None and fit not in FITS:
        raise CheckpointError(f"{path}: data.{VIDEO_FIT} must be resize or crop, got {fit!r}")
