"""A run stopped after k steps and resumed equals an uninterrupted run, bit for bit on CPU."""

from __future__ import annotations

import torch

from mimcast.training.checkpoint import load_checkpoint
from mimcast.training.config import resolve_config
from mimcast.training.runs import train_run

TINY = {
    "model": {"hidden": [4, 4], "filter_size": 3},
    "data": {"options": {"num_sequences": 24, "canvas": 32, "seq_len": 6, "context_len": 3}},
    "train": {
        "batch_size": 4,
        "val_every": 2,
        "val_sequences": 4,
        "checkpoint_every": 2,
        "eta_decay": 0.1,
        "log_every": 1,
    },
    "eval": {"batch_size": 4},
}


def tiny_config(steps: int, precision: str = "32"):
    over = {**TINY, "train": {**TINY["train"], "steps": steps, "precision": precision}}
    return resolve_config("quick", None, over)


def test_resume_is_bit_identical(tmp_path) -> None:
    quiet = lambda *a: None  # noqa: E731
    train_run(tiny_config(7), tmp_path / "straight", log=quiet)
    train_run(tiny_config(3), tmp_path / "split", log=quiet)
    train_run(tiny_config(7), tmp_path / "split", resume=True, log=quiet)
    a = load_checkpoint(tmp_path / "straight", "last")
    b = load_checkpoint(tmp_path / "split", "last")
    assert a.step == b.step == 7
    for k in a.model:
        assert torch.equal(a.model[k], b.model[k]), k
    for k in a.optimizer["state"][0]:
        assert torch.equal(a.optimizer["state"][0][k], b.optimizer["state"][0][k])
    log = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in log[1:]] == [str(i) for i in range(1, 8)]
