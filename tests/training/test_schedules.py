"""Learning-rate schedules, the moving average of the weights, and resuming with both."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch

from mimcast.runs.train import train_run
from mimcast.training.checkpoint import load_checkpoint
from mimcast.training.schedules import WeightAverage, learning_rate
from tests.tiny import tiny_config


def lr(step: int, schedule: str, **kw) -> float:
    args = dict(lr=1e-2, schedule=schedule, steps=100, warmup=0, lr_min=0.0) | kw
    return learning_rate(step, **args)


def test_schedules() -> None:
    assert [lr(s, "constant") for s in (0, 50, 99)] == [1e-2] * 3
    assert lr(0, "constant", warmup=10) == pytest.approx(1e-3)  # linear warmup from 0
    assert lr(9, "constant", warmup=10) == pytest.approx(1e-2)
    assert lr(10, "cosine", warmup=10) == pytest.approx(1e-2)  # the peak after warmup
    assert lr(55, "cosine", warmup=10) == pytest.approx(0.5e-2)  # half way down
    assert lr(100, "cosine", warmup=10, lr_min=0.1) == pytest.approx(1e-3)  # the floor
    assert lr(0, "onecycle") == pytest.approx(1e-2 / 25)  # one-cycle starts at peak / 25
    assert lr(30, "onecycle") == pytest.approx(1e-2)  # the peak at 30% of the steps
    assert lr(100, "onecycle") == pytest.approx(1e-6)  # and ends at peak / 1e4
    values = [lr(s, "onecycle") for s in range(100)]
    assert values.index(max(values)) == 30 and all(v > 0 for v in values)


def test_weight_average_is_an_exponential_moving_average() -> None:
    model = torch.nn.Linear(2, 1)
    avg = WeightAverage(model, decay=0.9)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.update(model)  # decay min(0.9, 1/10) = 0.1 at the first update
    torch.testing.assert_close(avg.model.weight, 0.1 * w0 + 0.9 * (w0 + 1))
    for _ in range(200):
        avg.update(model)
    torch.testing.assert_close(avg.model.weight, w0 + 1, rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in avg.model.parameters())


RECIPE = {"train": {"lr_schedule": "onecycle", "lr": 4e-3, "ema": 0.99}}


def test_a_run_with_ema_and_onecycle_resumes_bit_identically(tmp_path, monkeypatch) -> None:
    """Stopped (SIGTERM) after step 3 of 6 and resumed: the schedule, a function of (step,
    steps), and the average continue exactly."""
    from mimcast.training.trainer import Trainer

    quiet = lambda *a: None  # noqa: E731
    train_run(tiny_config(6, RECIPE), tmp_path / "straight", log=quiet)
    step = Trainer.train_step

    def stop_in_step_3(self, frames):
        if self.state.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, frames)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_step", stop_in_step_3)
        assert train_run(tiny_config(6, RECIPE), tmp_path / "split", log=quiet).step == 3
    train_run(tiny_config(6, RECIPE), tmp_path / "split", resume=True, log=quiet)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints", "last")
    b = load_checkpoint(tmp_path / "split" / "checkpoints", "last")
    assert a.raw is not None and a.extra["ema_updates"] == b.extra["ema_updates"] == 6
    for key in a.model:  # the average (what predictions use) and the raw weights
        assert torch.equal(a.model[key], b.model[key]) and torch.equal(a.raw[key], b.raw[key])
    assert any(not torch.equal(a.model[k], a.raw[k]) for k in a.model)  # they differ
    rows = (tmp_path / "split" / "log.csv").read_text().splitlines()[1:]
    lrs = [float(r.split(",")[4]) for r in rows]  # the lr column follows one-cycle
    assert lrs[0] == pytest.approx(4e-3 / 25) and math.isclose(max(lrs), 4e-3, rel_tol=0.2)


def test_resuming_with_another_ema_setting_is_refused(tmp_path) -> None:
    from mimcast.errors import MimcastError

    quiet = lambda *a: None  # noqa: E731
    train_run(tiny_config(2, RECIPE), tmp_path / "r", log=quiet)
    with pytest.raises(MimcastError, match="moving average of the weights"):
        train_run(tiny_config(4, {"train": {"ema": 0.0}}), tmp_path / "r", resume=True, log=quiet)
