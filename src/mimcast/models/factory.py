"""Building models: from a ModelConfig (`build_model`) or from keyword options (`create_model`)."""

from __future__ import annotations

from typing import Any

from mimcast.errors import ConfigError
from mimcast.models.config import ModelConfig
from mimcast.models.rollout import Forecaster


def build_model(config: ModelConfig) -> Forecaster:
    """Rebuild a model from its config alone (e.g. the one saved in a checkpoint)."""
    return Forecaster(config)


def create_model(name: str, **kwargs: Any) -> Forecaster:
    """Build a registered model, e.g. create_model("mim", in_channels=1, height=64, width=64)."""
    try:
        config = ModelConfig(name=name, **kwargs)
    except TypeError as e:  # an unknown keyword argument
        raise ConfigError(f"create_model({name!r}): {e}") from e
    return build_model(config)
