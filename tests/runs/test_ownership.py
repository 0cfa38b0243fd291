"""A user's files are never lost: what counts as a mimcast run, what --overwrite may touch,
symbolic links, report folders, and the smaller ways a run used to be changed by mistake."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import mimcast
from mimcast.runs.rundir import RunDir
from tests.helpers import NO_SUCH_GPU, NO_SUCH_GPU_REFUSAL, assert_one_line_error, listing, run_cli
from tests.tiny import tiny_sets

TINY = tiny_sets()


def train(capsys, run_dir: Path, *flags, steps: int = 2, sets=()) -> tuple[int, str, str]:
    return run_cli(
        capsys, "train", "--run-dir", run_dir, "--steps", steps, "--no-eval", *flags,
        "--set", *TINY, *sets,
    )  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished, evaluated tiny run (copied by each test that changes it)."""
    run = tmp_path_factory.mktemp("own") / "run"
    assert mimcast.cli.main(["train", "--run-dir", str(run), "--steps", "2", "--set", *TINY]) == 0
    return run


@pytest.fixture
def run(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run", symlinks=True))


def test_a_folder_with_a_config_yaml_is_not_a_run(tmp_path, capsys) -> None:
    """Defect 1: the issue's reproduction. The user's config, report and checkpoints stay."""
    p = tmp_path / "P"
    (p / "checkpoints").mkdir(parents=True)
    (p / "config.yaml").write_text("lr: 1\n")
    (p / "report.md").write_text("my notes\n")
    (p / "checkpoints" / "m.pt").write_text("w")
    (p / "eval").mkdir()
    before = listing(p)
    for flags in (["--overwrite"], ["--resume"], []):
        code, _, err = train(capsys, p, *flags)
        assert_one_line_error(code, err, "not a mimcast run")
        assert listing(p) == before, flags
    code, _, err = run_cli(capsys, "evaluate", "--run-dir", p)
    assert_one_line_error(code, err, "is not a mimcast run folder")
    assert listing(p) == before


def test_a_run_carries_a_marker_with_the_version(run) -> None:
    marker = json.loads((run / RunDir.MARKER).read_text())
    assert marker["format"] == "mimcast-run-1" and marker["mimcast"] == mimcast.__version__
    assert RunDir(run).is_run()


def test_overwrite_keeps_the_old_run_until_the_new_one_finishes(run, capsys, monkeypatch) -> None:
    """Defect 2, done better: the old run is moved aside, not deleted, until the new run's
    last step; a new run that fails half way leaves the old one recoverable."""
    from mimcast.training.trainer import Trainer

    (run / "notes.txt").write_text("mine")  # not mimcast's: never moved, never deleted
    old_log = (run / "log.csv").read_text()
    step = Trainer.train_step

    def fail_at_step_3(self, frames):
        if self.state.step == 2:
            raise mimcast.MimcastError("simulated failure at step 3")
        return step(self, frames)

    monkeypatch.setattr(Trainer, "train_step", fail_at_step_3)
    code, _, err = train(capsys, run, "--overwrite", steps=4)
    assert code == 2 and "simulated failure" in err
    previous = run / RunDir.PREVIOUS
    assert (previous / "log.csv").read_text() == old_log  # the old run, whole
    assert (previous / "checkpoints" / "last.json").is_file()
    assert (run / "notes.txt").read_text() == "mine"
    monkeypatch.undo()
    code, out, err = train(capsys, run, "--resume", steps=4)  # the new run finishes...
    assert code == 0, err
    assert not previous.exists()  # ...and only then is the old one deleted
    assert (run / "notes.txt").read_text() == "mine"
    assert [r["step"] for r in csv.DictReader((run / "log.csv").open())] == ["1", "2", "3", "4"]


def test_overwrite_refuses_links_and_foreign_files_inside_the_run(run, tmp_path, capsys) -> None:
    """Defect 8: a symlinked checkpoints/ or eval/ (and a user's file inside them) is never
    followed, moved or deleted; --overwrite refuses before touching anything."""
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "checkpoints", elsewhere)
    (run / "checkpoints").symlink_to(elsewhere)
    snapshot = {"run": listing(run), "elsewhere": listing(elsewhere)}
    code, _, err = train(capsys, run, "--overwrite")
    assert_one_line_error(code, err, "is a symbolic link mimcast did not make")
    assert {"run": listing(run), "elsewhere": listing(elsewhere)} == snapshot
    (run / "checkpoints").unlink()
    shutil.move(elsewhere, run / "checkpoints")

    (run / "eval" / "test" / "keep.txt").write_text("mine")
    before = listing(run)
    code, _, err = train(capsys, run, "--overwrite")
    assert_one_line_error(code, err, "holds files mimcast did not write (test/keep.txt)")
    assert listing(run) == before
    code, _, err = run_cli(capsys, "evaluate", "--run-dir", run)  # nor does evaluate replace it
    assert_one_line_error(code, err, "holds files mimcast did not write (keep.txt)")
    assert listing(run) == before


def test_overwrite_with_bad_input_changes_nothing(run, capsys) -> None:
    before = listing(run)
    for sets in (
        ["train.seed=-1"], ["train.lr=.inf"], ["train.sampling.eta_start=5"],
        ["train.sampling.eta_decay=-1"], ["eval.show=-1"], ["data.num_workers=-1"],
        ["data.options.canvas=abc"],
    ):  # fmt: skip
        code, _, err = train(capsys, run, "--overwrite", sets=sets)
        assert code == 2 and "Traceback" not in err, (sets, err)
        assert listing(run) == before, sets


def test_repeated_set_flags_are_all_kept(tmp_path, capsys) -> None:
    """Defect 7: `--set a=1 --set b=2` keeps both."""
    run = tmp_path / "r"
    code, _, err = run_cli(
        capsys, "train", "--run-dir", run, "--steps", 1, "--no-eval", "--set", *TINY,
        "--set", "train.log_every=1", "--set", "train.seed=7",
    )  # fmt: skip
    assert code == 0, err
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["seed"] == 7 and cfg["model"]["hidden"] == [4, 4]


def test_a_resume_that_changes_nothing_writes_nothing(run, capsys) -> None:
    """Defect 10: `--resume --steps 1` on a longer run refuses; the same steps change no file."""
    before = listing(run)
    code, _, err = train(capsys, run, "--resume", steps=1)
    assert_one_line_error(code, err, "is at step 2, beyond train.steps 1")
    assert listing(run) == before
    code, out, err = train(capsys, run, "--resume", steps=2)
    assert code == 0 and "nothing to do" in out, err
    assert {k: v for k, v in listing(run).items() if "lock" not in k} == {
        k: v for k, v in before.items() if "lock" not in k
    }


def test_a_run_stopped_before_validating_does_not_print_inf(tmp_path, capsys, monkeypatch):
    from mimcast.training.trainer import Trainer

    step = Trainer.train_step

    def stop_in_step_1(self, frames):
        if self.state.step == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # finish this step, save, stop
        return step(self, frames)

    monkeypatch.setattr(Trainer, "train_step", stop_in_step_1)
    code, out, _ = train(capsys, tmp_path / "r", steps=4, sets=["train.val_every=100"])
    assert code == 143 and "no validation yet" in out and "inf" not in out


def test_load_model_after_a_plain_import(tmp_path, capsys) -> None:
    """Defect 10: the README's loading line works after `import mimcast` alone, and gives the
    weights of the `best` checkpoint: the step of the lowest validation MSE (a large learning
    rate makes it an earlier one than the last)."""
    run = tmp_path / "run"
    code, _, err = train(capsys, run, steps=6, sets=["train.lr=1.0"])
    assert code == 0, err
    val = {int(r["step"]): float(r["val_mse"]) for r in csv.DictReader((run / "log.csv").open())
           if r["val_mse"]}  # fmt: skip
    assert sorted(val) == [2, 4, 6]
    lowest = min(val, key=val.get)
    pointer = {p: json.loads((run / "checkpoints" / f"{p}.json").read_text())["dir"]
               for p in ("best", "last")}  # fmt: skip
    assert pointer == {"best": f"step-{lowest:07d}", "last": "step-0000006"} and lowest != 6
    model = mimcast.load_model(run)
    assert model.config.hidden == (4, 4) and not model.training
    for p, same in (("best", True), ("last", False)):
        saved = load_file(run / "checkpoints" / pointer[p] / "tensors.safetensors")
        equal = [torch.equal(v, saved[f"model.{k}"]) for k, v in model.state_dict().items()]
        assert all(equal) if same else not all(equal), p


def test_evaluate_compare_missing_writes_nothing(run, tmp_path, capsys) -> None:
    before = listing(run)
    code, _, err = run_cli(capsys, "evaluate", "--run-dir", run, "--compare", tmp_path / "none")
    assert_one_line_error(code, err, "--compare")
    assert listing(run) == before


def test_predict_outputs_may_not_coincide_or_have_odd_names(run, tmp_path, capsys) -> None:
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.full((3, 1, 32, 32), 100.0, np.float32))
    before = listing(tmp_path)
    base = ["predict", "--run-dir", run, "--input", ctx, "--horizon", 2]
    for extra, message in (
        (["--output", tmp_path / "a.npy", "--gif", tmp_path / "a.npy"], "--gif must end in .gif"),
        (["--output", tmp_path / "a.npy", "--png", tmp_path / "a.txt"], "--png must end in .png"),
        (["--output", tmp_path / "a.npy", "--horizon", 20000], "--horizon must be in [1, 1000]"),
        (["--output", tmp_path / "a.npy", "--device", NO_SUCH_GPU], NO_SUCH_GPU_REFUSAL),
    ):
        code, _, err = run_cli(capsys, *base, *extra)
        assert_one_line_error(code, err, message)
        assert listing(tmp_path) == before


def test_experiment_reports_are_mimcast_s_own(tmp_path, capsys) -> None:
    """Defect 6: a report folder that is not mimcast's is refused before anything runs; the
    default lies inside the study's own folder, not in the current directory's docs/."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.md").write_text("published by hand")
    (docs / "results.json").write_text("{}")
    before = listing(tmp_path)
    code, _, err = run_cli(
        capsys, "experiment", "table3", "--seeds", 0, "--steps", 1, "--out", tmp_path / "out",
        "--report-dir", docs, "--set", *TINY,
    )  # fmt: skip
    assert_one_line_error(code, err, "not a mimcast report")
    assert listing(tmp_path) == before
    from mimcast.studies.experiments import StudyRequest

    assert StudyRequest("table1").report_path == Path("runs/experiments/table1/report")
