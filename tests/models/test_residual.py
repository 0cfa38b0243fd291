"""model.residual: x_{t+1} = x_t + head(h), starting as persistence, for every registered model."""

from __future__ import annotations

import pytest
import torch

import mimcast
from mimcast.errors import ConfigError

BASE = dict(in_channels=2, height=8, width=12, patch_size=2, hidden=(6, 6), filter_size=3)
# Models whose prediction is already a transformation of the frame read, persistence among
# them: x_t + head(h) would add the frame twice, and there is no zero form of their heads.
NO_RESIDUAL = {
    "dfn": "the last frame filtered (the identity filter is persistence)",
    "cdna": "a composite of the last frame (its background mask is persistence)",
    "frnn": "decoded from the shared states alone (a prediction is never read, not even added)",
    "mcnet": "decoded from the last frame's content and its motion, with a bounded (tanh) output",
    "stresnet": "a tanh of the fused branches, with no head that can start at zero",
}
RESIDUAL_MODELS = [n for n in mimcast.list_models() if n not in NO_RESIDUAL]


@pytest.mark.parametrize("name", RESIDUAL_MODELS)
def test_untrained_residual_model_is_persistence(name: str) -> None:
    model = mimcast.create_model(name, residual=True, **BASE).eval()
    context = torch.rand(3, 4, 2, 8, 12)
    future = model.predict(context, horizon=5)
    assert torch.equal(future, context[:, -1:].expand_as(future))  # the last frame, exactly
    frames = torch.rand(2, 6, 2, 8, 12)
    preds = model(frames, context_len=3)  # teacher-forced steps repeat the frame each one read
    assert torch.equal(preds[:, :2], frames[:, :2])


@pytest.mark.parametrize("name", RESIDUAL_MODELS)
def test_residual_model_learns_from_the_start(name: str) -> None:
    """A zero head must still get gradients, and every parameter with it after one step."""
    model = mimcast.create_model(name, residual=True, **BASE)
    frames = torch.rand(2, 5, 2, 8, 12)
    loss = ((model(frames, context_len=2) - frames[:, 1:]) ** 2).mean()
    loss.backward()
    assert model.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(NO_RESIDUAL))
def test_models_without_a_residual_form_refuse_it(name: str) -> None:
    with pytest.raises(ConfigError, match=f"model {name!r} has no residual form"):
        mimcast.create_model(name, residual=True, **BASE)
    mimcast.create_model(name, **BASE)  # (and build without it)


def test_residual_off_is_the_plain_head() -> None:
    torch.manual_seed(0)
    plain = mimcast.create_model("mim", **BASE)
    torch.manual_seed(0)
    res = mimcast.create_model("mim", residual=True, **BASE)
    res.load_state_dict(plain.state_dict())  # same weights, the frame read added
    ctx = torch.rand(1, 3, 2, 8, 12)
    frames = torch.cat([ctx, torch.rand(1, 1, 2, 8, 12)], dim=1)
    diff = res(frames, context_len=3) - plain(frames, context_len=3)
    assert torch.allclose(diff, frames[:, :-1], atol=1e-6)


def test_residual_is_a_bool_setting() -> None:
    with pytest.raises(ConfigError, match="residual"):
        mimcast.create_model("mim", residual="maybe", **BASE)
