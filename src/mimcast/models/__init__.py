"""Models: cells, the shared rollout, one file per model family, and the registry."""

from mimcast.models import (  # noqa: F401 (registers)
    cdna,
    convlstm,
    dfn,
    fclstm,
    frnn,
    mcnet,
    mim,
    predrnn,
    predrnnpp,
    predrnnv2,
    stresnet,
    trajgru,
    vpn,
)
from mimcast.models.config import ModelConfig
from mimcast.models.factory import build_model, create_model
from mimcast.models.registry import list_models, register_model
from mimcast.models.rollout import Forecaster
from mimcast.models.stack import RecurrentStack

__all__ = [
    "Forecaster",
    "ModelConfig",
    "RecurrentStack",
    "build_model",
    "create_model",
    "list_models",
    "register_model",
]
