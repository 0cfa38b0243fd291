"""The `predrnnv2` preset inside a real run: the decoupling loss weighted by decouple_beta in
the loss that is back-propagated, and reverse scheduled sampling masking the context."""

from __future__ import annotations

import csv

import pytest

from mimcast.training import trainer
from tests.helpers import run_cli

SMALL = [
    "model.hidden=[4,4]", "model.filter_size=3", "train.val_every=2", "train.val_sequences=2",
    "train.checkpoint_every=2", "train.precision=32", "eval.batch_size=2",
    "eval.num_sequences=2", "eval.show=1", "data.options.num_sequences=8",
    "data.options.canvas=32", "data.options.seq_len=6", "data.options.context_len=3",
]  # fmt: skip


@pytest.mark.parametrize("beta", [None, 0.0])  # the preset's own 0.1, and none at all
def test_the_preset_back_propagates_l2_plus_beta_times_the_decoupling_loss(
    beta, tmp_path, capsys, monkeypatch
) -> None:
    seen = []  # per step: the loss back-propagated, and the masks of the context and future
    backward, masks = trainer.Trainer._backward, trainer.Trainer._masks

    def recording_backward(self, total):
        seen[-1]["total"] = float(total.detach())
        return backward(self, total)

    def recording_masks(self, batch, seq_len):
        mask, ctx = masks(self, batch, seq_len)
        seen.append({"mask": mask, "ctx": ctx})
        return mask, ctx

    monkeypatch.setattr(trainer.Trainer, "_backward", recording_backward)
    monkeypatch.setattr(trainer.Trainer, "_masks", recording_masks)
    extra = [] if beta is None else [f"train.decouple_beta={beta}"]
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--preset", "predrnnv2", "--run-dir", run,
                             "--steps", 3, "--batch-size", 2, "--set", *SMALL, *extra)  # fmt: skip
    assert code == 0, err
    assert "training predrnnv2" in out
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert len(rows) == len(seen) == 3
    weight = 0.1 if beta is None else beta
    for row, step in zip(rows, seen, strict=True):
        loss, aux = float(row["loss"]), float(row["decoupling_loss"])
        assert aux > 1e-3  # so that the weight shows
        assert step["total"] == pytest.approx(loss + weight * aux, rel=1e-5, abs=1e-7)
        # reverse scheduled sampling before s1: half the context and half the future true
        assert step["ctx"] is not None and step["mask"] is not None
        assert step["ctx"].shape[:2] == (2, 2) and step["mask"].shape[:2] == (2, 2)
