"""mimcast: spatiotemporal predictive learning with Memory In Memory networks."""

from mimcast.errors import CheckpointError, ConfigError, DataError, MimcastError
from mimcast.models import (
    Forecaster,
    ModelConfig,
    build_model,
    create_model,
    list_models,
    register_model,
)
from mimcast.models.openstl import from_openstl

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Forecaster",
    "MimcastError",
    "ModelConfig",
    "build_model",
    "create_model",
    "from_openstl",
    "list_models",
    "register_model",
]
