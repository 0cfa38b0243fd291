"""Loading a state dict into a model, strictly: every name and shape must fit, or one line."""

from __future__ import annotations

from torch import Tensor, nn

from mimcast.errors import CheckpointError


def load_weights(model: nn.Module, state_dict: dict[str, Tensor], where: str) -> None:
    """load_state_dict with a one-line error for missing, unexpected or mis-shaped tensors."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(ours))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {where} does not fit this model: "
            + (f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}")
            + f" ({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for k, v in state_dict.items():
        if tuple(v.shape) != tuple(ours[k].shape):
            raise CheckpointError(
                f"checkpoint {where}: {k} has shape {tuple(v.shape)}, the model expects "
                f"{tuple(ours[k].shape)}"
            )
    model.load_state_dict(state_dict)
