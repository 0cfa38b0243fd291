"""mimcast: spatiotemporal predictive learning with Memory In Memory networks."""

from mimcast._version import __version__
from mimcast.errors import (
    BusyError,
    CheckpointError,
    ConfigError,
    DataError,
    MimcastError,
    StorageError,
)
from mimcast.models import (
    Forecaster,
    ModelConfig,
    RecurrentStack,
    build_model,
    create_model,
    list_models,
    register_model,
)
from mimcast.models.openstl import from_openstl
from mimcast.runs.predict import load_model
from mimcast.share.hub import from_pretrained

__all__ = [
    "BusyError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Forecaster",
    "MimcastError",
    "ModelConfig",
    "RecurrentStack",
    "StorageError",
    "__version__",
    "build_model",
    "create_model",
    "from_openstl",
    "from_pretrained",
    "list_models",
    "load_model",
    "register_model",
]
