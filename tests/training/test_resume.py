"""A run stopped after k steps and resumed equals an uninterrupted run, bit for bit on CPU."""

from __future__ import annotations

import torch

from mimcast.runs.train import train_run
from mimcast.training.checkpoint import load_checkpoint
from tests.tiny import tiny_config


def test_resume_is_bit_identical(tmp_path) -> None:
    quiet = lambda *a: None  # noqa: E731
    train_run(tiny_config(7), tmp_path / "straight", log=quiet)
    train_run(tiny_config(3), tmp_path / "split", log=quiet)
    train_run(tiny_config(7), tmp_path / "split", resume=True, log=quiet)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints", "last")
    b = load_checkpoint(tmp_path / "split" / "checkpoints", "last")
    assert a.step == b.step == 7
    for k in a.model:
        assert torch.equal(a.model[k], b.model[k]), k
    for k in a.optimizer["state"][0]:
        assert torch.equal(a.optimizer["state"][0][k], b.optimizer["state"][0][k])
    log = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in log[1:]] == [str(i) for i in range(1, 8)]
