"""Model registry: `register_model`, `create_model(name, **kwargs)`, `list_models()`.

A model family registers a builder that turns a ModelConfig into its RecurrentStack; the
registry wraps the stack into a Forecaster (the shared rollout). An unknown name is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mimcast.errors import ConfigError
from mimcast.models.config import ModelConfig
from mimcast.models.rollout import Forecaster
from mimcast.models.stack import RecurrentStack

StackBuilder = Callable[[ModelConfig], RecurrentStack]
_BUILDERS: dict[str, StackBuilder] = {}


def register_model(name: str) -> Callable[[StackBuilder], StackBuilder]:
    """Decorator: `@register_model("mim")` on a function ModelConfig -> RecurrentStack."""

    def decorate(builder: StackBuilder) -> StackBuilder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorate


def list_models() -> list[str]:
    """Names accepted by create_model, sorted."""
    return sorted(_BUILDERS)


def check_buildable(config: ModelConfig) -> None:
    """Raise ConfigError when no model can be built from `config` (frame shape aside)."""
    if config.name not in _BUILDERS:
        raise ConfigError(f"unknown model {config.name!r}; available: {', '.join(list_models())}")
    if config.name != "mim" and not (config.mim_n and config.mim_s):
        raise ConfigError("mim_n / mim_s ablations apply to the 'mim' model only")


def build_model(config: ModelConfig) -> Forecaster:
    """Rebuild a model from its config alone (e.g. the one saved in a checkpoint)."""
    check_buildable(config)
    if not config.has_frames:
        raise ConfigError("a model needs the frame shape: in_channels, height and width")
    return Forecaster(config, _BUILDERS[config.name](config))


def create_model(name: str, **kwargs: Any) -> Forecaster:
    """Build a registered model, e.g. create_model("mim", in_channels=1, height=64, width=64)."""
    try:
        config = ModelConfig(name=name, **kwargs)
    except TypeError as e:  # an unknown keyword argument
        raise ConfigError(f"create_model({name!r}): {e}") from e
    return build_model(config)
