"""The fault suite: kills, signals, NaN/inf, full disks, damaged files and bad input.

Every case here is listed in docs/reliability.md with its outcome. Runs are tiny (hidden [4,4],
32x32 Moving MNIST, 6-frame sequences) so the whole file takes well under a minute on 2 cores.
Most CLI cases call `mimcast.cli.main` in-process (same code as `python -m mimcast`, without
the interpreter start-up); the kill and signal cases run a real subprocess.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mimcast import cli
from mimcast import fs as fs_mod
from mimcast.fs import storage_error
from mimcast.runs import formats as formats_mod
from mimcast.runs import train as train_mod
from mimcast.training import checkpoint as ckpt_mod
from mimcast.training.checkpoint import save_checkpoint
from mimcast.training.trainer import Trainer
from tests.helpers import (
    NO_SUCH_GPU,
    NO_SUCH_GPU_REFUSAL,
    assert_one_line_error,
    listing,
    run_cli,
    spawn_slow,
    wait_until,
)
from tests.tiny import tiny_sets

TINY = tiny_sets({"train": {"val_every": 100}})  # validation only where a test asks for it
NO_DATA = [s for s in TINY if not s.startswith("data.options")]
CUSTOM = [*NO_DATA, "data.options.seq_len=6", "data.options.context_len=3"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread in-process, as OMP_NUM_THREADS=1 gives the subprocesses: results
    are then bit-identical between the two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


mimcast = run_cli


def train(
    capsys, run_dir: Path, *flags: str, sets: tuple[str, ...] = (), steps: int = 4
) -> tuple[int, str, str]:
    """`mimcast train` of the tiny config; `sets` go after TINY (a key again: the last wins)."""
    return mimcast(
        capsys, "train", "--run-dir", run_dir, "--steps", steps, "--batch-size", 4, "--no-eval",
        *flags, "--set", *TINY, *sets,
    )  # fmt: skip


def load_checkpoint(run_dir: Path, which: str = "last"):
    return ckpt_mod.load_checkpoint(run_dir / "checkpoints", which)


def log_steps(run_dir: Path) -> list[int]:
    return [int(r["step"]) for r in csv.DictReader((run_dir / "log.csv").open())]


def same_weights(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.step == cb.step
    for k in ca.model:
        assert torch.equal(ca.model[k], cb.model[k]), k
    for pid, st in ca.optimizer["state"].items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(cb.optimizer["state"][pid][k]))


def pointer_step(run_dir: Path, which: str = "last") -> int:
    return json.loads((run_dir / "checkpoints" / f"{which}.json").read_text())["step"]


@pytest.fixture(scope="module")
def runs_ab(tmp_path_factory) -> tuple[Path, Path]:
    """Two finished tiny runs of different models (mim [4,4] and mim [6,6]), not evaluated."""
    root = tmp_path_factory.mktemp("faults")
    a, b = root / "a", root / "b"
    for run_dir, hidden in ((a, "[4,4]"), (b, "[6,6]")):
        code = cli.main(
            ["train", "--run-dir", str(run_dir), "--steps", "2", "--batch-size", "4", "--no-eval",
             "--set", *TINY, f"model.hidden={hidden}", "train.val_every=2"]
        )  # fmt: skip
        assert code == 0
    return a, b


@pytest.fixture
def run(runs_ab, tmp_path) -> Path:
    """A private copy of run a, free to damage."""
    return Path(shutil.copytree(runs_ab[0], tmp_path / "run"))


# ---------------- kills and signals
def _spawn(run_dir: Path, steps: int, *extra: str) -> subprocess.Popen:
    args = ["train", "--run-dir", run_dir, "--steps", steps, "--batch-size", 4, "--no-eval",
            "--set", *TINY, *extra]  # fmt: skip
    return spawn_slow(*args)


def _last_step(run_dir: Path) -> int:
    try:
        return pointer_step(run_dir)
    except (OSError, ValueError, KeyError):
        return -1


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, capsys) -> None:
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    proc = _spawn(killed, 20)
    wait_until(proc, lambda: _last_step(killed) >= 6, "the checkpoint of step 6")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    at = load_checkpoint(killed, "last").step  # the last complete checkpoint loads
    assert 6 <= at < 20
    code, out, err = train(capsys, killed, "--resume", steps=20)
    assert code == 0, err
    assert f"resuming {killed} at step {at}" in out
    assert train(capsys, straight, steps=20)[0] == 0
    same_weights(killed, straight)  # bit for bit: weights and Adam moments
    assert log_steps(killed) == list(range(1, 21))  # rows after the checkpoint were dropped


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)],  # SIGHUP: ssh closed
    ids=["SIGTERM", "SIGINT", "SIGHUP"],
)
def test_sigterm_and_sigint_save_stop_and_resume(sig, code, tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    log = run_dir / "log.csv"
    # checkpoint_every=100: the only checkpoint is the one the signal makes
    proc = _spawn(run_dir, 40, "train.checkpoint_every=100")
    wait_until(proc, lambda: log.is_file() and len(log.read_text().splitlines()) >= 4, "3 steps")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    step = load_checkpoint(run_dir, "last").step
    assert 3 <= step < 40
    assert f"stopped by {sig.name} at step {step}; checkpoint saved" in out
    assert log_steps(run_dir) == list(range(1, step + 1))
    assert not (run_dir / "eval").exists()  # no evaluation after a stop
    rc, out, err = train(
        capsys, run_dir, "--resume", sets=("train.checkpoint_every=100",), steps=step + 2
    )
    assert rc == 0, err
    assert load_checkpoint(run_dir, "last").step == step + 2
    assert log_steps(run_dir) == list(range(1, step + 3))


def test_a_second_sigint_aborts_at_once_keeping_the_checkpoint(tmp_path, capsys, monkeypatch):
    step_fn = Trainer.train_step

    def ctrl_c_twice_in_step_3(self, frames):
        if self.state.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the first asks for a stop after this step
            os.kill(os.getpid(), signal.SIGINT)  # the second aborts at once
        return step_fn(self, frames)

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_twice_in_step_3)
    # What was installed before (default_int_handler, or SIG_IGN when started in the background).
    before = signal.getsignal(signal.SIGINT)
    code, _, err = train(capsys, tmp_path / "run", steps=6)
    assert code == 130 and err.strip().endswith("mimcast: interrupted"), err
    assert load_checkpoint(tmp_path / "run", "last").step == 2
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


class _Killed(BaseException):
    """A SIGKILL stand-in: no except clause or cleanup of ours catches it."""


class _Crashing:
    """Proxy of a module whose listed functions count calls and die at call number `at`."""

    def __init__(self, real, names: set[str], counter: list[int], at: int) -> None:
        self._real, self._names, self._counter, self._at = real, names, counter, at

    def __getattr__(self, name: str):
        attr = getattr(self._real, name)
        if name not in self._names:
            return attr

        def call(*args, **kwargs):
            self._counter[0] += 1
            if self._counter[0] == self._at:
                raise _Killed
            return attr(*args, **kwargs)

        return call


@pytest.mark.parametrize("same_step", [False, True], ids=["new-step", "same-step-again"])
def test_a_kill_at_any_point_of_a_checkpoint_write_keeps_a_loadable_one(
    same_step, tmp_path, monkeypatch
) -> None:
    import mimcast

    model = mimcast.create_model("mim", in_channels=1, height=8, width=8, hidden=(4, 4))
    opt = torch.optim.Adam(model.parameters())
    at, points = 1, 0
    while True:
        d = tmp_path / f"kill-{at}"
        save_checkpoint(d, step=1, model=model, optimizer=opt, pointers=("last", "best"))
        if same_step:
            save_checkpoint(d, step=2, model=model, optimizer=opt)
        counter = [0]
        with monkeypatch.context() as m:
            crashing_os = _Crashing(os, {"replace", "fsync", "open"}, counter, at)
            m.setattr(ckpt_mod, "os", crashing_os)
            m.setattr(fs_mod, "os", crashing_os)  # pointer writes and fsyncs go through fs
            m.setattr(ckpt_mod, "shutil", _Crashing(shutil, {"rmtree"}, counter, at))
            m.setattr(ckpt_mod, "save_file", _Crashing(ckpt_mod, {"save_file"}, counter, at)
                      .save_file)  # fmt: skip
            try:
                save_checkpoint(d, step=2, model=model, optimizer=opt, pointers=("last", "best"))
                finished = True
            except _Killed:
                finished, points = False, points + 1
        for which in ("last", "best"):  # each pointer names a complete, verified checkpoint
            assert ckpt_mod.load_checkpoint(d, which).step in (1, 2)
        assert ckpt_mod.load_checkpoint(d, "last").step == 2 or not finished
        save_checkpoint(d, step=3, model=model, optimizer=opt)  # works, clears the leftovers
        assert ckpt_mod.load_checkpoint(d, "last").step == 3
        assert not [p for p in d.iterdir() if p.name.startswith(".")]
        if finished:
            break
        at += 1
    assert points >= 8  # every write, fsync and rename of a checkpoint was a kill point


# ---------------- numeric faults
class _Poisoned(torch.utils.data.Dataset):
    """The train set, with `value` in every pixel of the items read for step `step`."""

    def __init__(self, inner, step: int, batch_size: int, value: float) -> None:
        self.inner, self.calls, self.value = inner, 0, value
        self.poisoned = range((step - 1) * batch_size, step * batch_size)

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __getitem__(self, i):
        item = self.inner[i]
        self.calls += 1
        return torch.full_like(item, self.value) if self.calls - 1 in self.poisoned else item


def _poison(monkeypatch, step: int, value: float) -> None:
    real = train_mod.build_splits

    def build_splits(cfg, splits):
        out = real(cfg, splits)
        if "train" in out:
            out["train"] = _Poisoned(out["train"], step, cfg.train.batch_size, value)
        return out

    monkeypatch.setattr(train_mod, "build_splits", build_splits)


@pytest.mark.parametrize(("value", "shown"), [(float("nan"), "nan"), (1e30, "inf")])
def test_nan_or_inf_loss_stops_naming_the_step(value, shown, tmp_path, capsys, monkeypatch):
    _poison(monkeypatch, step=3, value=value)
    code, _, err = train(capsys, tmp_path / "run", steps=6)
    assert_one_line_error(code, err, f"the loss became {shown} at step 3")
    ckpt = load_checkpoint(tmp_path / "run", "last")  # the good checkpoint of step 2 is kept
    assert ckpt.step == 2 and all(torch.isfinite(v).all() for v in ckpt.model.values())


def test_on_nan_skip_skips_the_batch_and_counts_it(tmp_path, capsys, monkeypatch) -> None:
    _poison(monkeypatch, step=3, value=float("nan"))
    code, out, err = train(capsys, tmp_path / "run", sets=("train.on_nan=skip",), steps=6)
    assert code == 0, err
    assert "step 3: the loss is not finite; batch skipped (1 so far)" in out
    ckpt = load_checkpoint(tmp_path / "run", "last")
    assert ckpt.step == 6 and ckpt.extra["skipped"] == 1
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [r["loss"] == "" for r in rows] == [False, False, True, False, False, False]


def test_nan_gradient_with_a_finite_loss_stops_naming_the_step(tmp_path, capsys, monkeypatch):
    clip, calls = torch.nn.utils.clip_grad_norm_, [0]

    def nan_on_third(params, max_norm, *a, **k):
        params = list(params)
        calls[0] += 1
        if calls[0] == 3:
            params[0].grad.fill_(float("nan"))
        return clip(params, max_norm, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", nan_on_third)
    code, _, err = train(capsys, tmp_path / "run", steps=6)
    assert_one_line_error(code, err, "the gradient norm became nan at step 3")
    assert load_checkpoint(tmp_path / "run", "last").step == 2


def test_nan_weights_never_replace_a_good_checkpoint(tmp_path, capsys, monkeypatch) -> None:
    step_fn = Trainer.train_step

    def corrupt_after_step_3(self, frames):
        loss = step_fn(self, frames)
        if self.state.step == 2:  # step 3 just ran
            with torch.no_grad():
                next(self.raw_model.parameters()).fill_(float("nan"))
        return loss

    monkeypatch.setattr(Trainer, "train_step", corrupt_after_step_3)
    # on_nan=skip: the NaN losses of step 4 are skipped, so the save itself must refuse
    code, _, err = train(capsys, tmp_path / "run", sets=("train.on_nan=skip",), steps=6)
    assert_one_line_error(code, err, "step 4: refusing to save: weight")
    ckpt = load_checkpoint(tmp_path / "run", "last")
    assert ckpt.step == 2 and all(torch.isfinite(v).all() for v in ckpt.model.values())


def _series(path: Path, nan_at: int | None) -> Path:
    x = np.random.default_rng(0).random((60, 16, 16)).astype(np.float32)
    if nan_at is not None:
        x[nan_at, 3, 3] = np.nan
    np.save(path, x)
    return path


def test_nan_in_a_data_file(tmp_path, capsys) -> None:
    train_nan, val_nan = _series(tmp_path / "a.npy", 20), _series(tmp_path / "b.npy", 50)
    custom = ["--data", "custom", "--batch-size", 4, "--set", *CUSTOM]
    # in the training part (scanned when the data set is opened): nothing is written
    before = listing(tmp_path)
    code, _, err = mimcast(
        capsys, "train", "--run-dir", tmp_path / "r1", "--data-root", train_nan, "--steps", 4,
        *custom,
    )  # fmt: skip
    assert_one_line_error(code, err, "NaN or inf values at time index 20")
    assert listing(tmp_path) == before
    # in the validation part (read only when validating): the run stops naming the step
    code, _, err = mimcast(
        capsys, "train", "--run-dir", tmp_path / "r2", "--data-root", val_nan, "--steps", 6,
        *custom, "train.val_every=4",
    )  # fmt: skip
    assert_one_line_error(code, err, "validation at step 4: ")
    assert "contains NaN or inf values" in err
    assert load_checkpoint(tmp_path / "r2", "last").step == 2


# ---------------- a failing disk
@pytest.mark.parametrize("where", ["tensors", "pointer"])
def test_a_failing_disk_write_keeps_the_previous_checkpoint(where, tmp_path, capsys, monkeypatch):
    """Simulated here, at each write; tests/runs/test_full_disk.py fills a real file system."""
    name = "save_file" if where == "tensors" else "atomic_write_json"
    real, calls = getattr(ckpt_mod, name), [0]

    def full_disk_on_second(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            e = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise e if where == "tensors" else storage_error(args[0], e)
        return real(*args, **kwargs)

    monkeypatch.setattr(ckpt_mod, name, full_disk_on_second)
    run_dir = tmp_path / "run"
    code, _, err = train(capsys, run_dir, steps=6)
    assert_one_line_error(
        code, err, "cannot write the checkpoint of step 4 in " + str(run_dir / "checkpoints"), 1
    )
    assert "no space left on device; the previous checkpoint (step-0000002) is kept" in err
    assert load_checkpoint(run_dir, "last").step == 2  # intact, hash verified
    assert not [p for p in (run_dir / "checkpoints").iterdir() if ".tmp-" in p.name]
    monkeypatch.setattr(ckpt_mod, name, real)  # the disk has room again: resume from step 2
    code, out, err = train(capsys, run_dir, "--resume", steps=6)
    assert code == 0 and "at step 2" in out, err
    assert load_checkpoint(run_dir, "last").step == 6


def test_a_failing_disk_write_in_predict_writes_nothing(run, tmp_path, capsys, monkeypatch):
    def full_disk(path, *args):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(formats_mod, "write_prediction", full_disk)  # the last of the outputs
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.full((3, 1, 32, 32), 100.0, np.float32))
    before = listing(tmp_path)
    code, _, err = mimcast(
        capsys, "predict", "--run-dir", run, "--input", ctx, "--horizon", 2, "--output",
        tmp_path / "out.npy", "--gif", tmp_path / "out.gif",
    )  # fmt: skip
    assert_one_line_error(code, err, "no space left on device", exit_code=1)  # not bad input
    assert "out.tmp-" in err or "out.npy" in err  # the message names the file
    assert listing(tmp_path) == before  # neither the GIF nor a temporary file is left


# ---------------- damaged and foreign files
def test_a_truncated_checkpoint_is_refused_everywhere(run, tmp_path, capsys) -> None:
    folder = ckpt_mod.resolve_checkpoint(run / "checkpoints", "last")
    tensors = folder / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:1000])
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.zeros((3, 1, 32, 32), np.float32))
    before = listing(tmp_path)
    for args in (
        ["evaluate", "--run-dir", run, "--checkpoint", "last"],
        ["predict", "--run-dir", run, "--checkpoint", "last", "--input", ctx, "--horizon", 2,
         "--output", tmp_path / "out.npy"],
        ["train", "--run-dir", run, "--resume", "--steps", 4, "--batch-size", 4, "--no-eval",
         "--set", *TINY, "train.val_every=2"],
    ):  # fmt: skip
        code, _, err = mimcast(capsys, *args)
        assert_one_line_error(code, err, "does not match its recorded hash (truncated or modified)")
        assert listing(tmp_path) == before, args[0]  # config.yaml not even rewritten


def test_a_checkpoint_of_another_model_is_refused(runs_ab, run, tmp_path, capsys) -> None:
    shutil.rmtree(run / "checkpoints")
    shutil.copytree(runs_ab[1] / "checkpoints", run / "checkpoints")  # [6,6] into a [4,4] run
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.zeros((3, 1, 32, 32), np.float32))
    before = listing(tmp_path)
    for args, message in (
        (["evaluate", "--run-dir", run], "is of another model (mim, hidden [6, 6]"),
        (["predict", "--run-dir", run, "--input", ctx, "--horizon", 2, "--output",
          tmp_path / "out.npy"], "is of another model (mim, hidden [6, 6]"),
        (["train", "--run-dir", run, "--resume", "--steps", 4, "--batch-size", 4, "--no-eval",
          "--set", *TINY, "train.val_every=2"], "is of another model (mim, hidden [6, 6])"),
    ):  # fmt: skip
        code, _, err = mimcast(capsys, *args)
        assert_one_line_error(code, err, message)
        assert listing(tmp_path) == before, args[0]


class _Evil:
    """Unpickling this creates a file: proof that code in a file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_in_a_prediction_input_is_never_run(run, tmp_path, capsys) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.npy"
    np.save(bad, np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    pickle.loads(pickle.dumps(_Evil(tmp_path / "control")))  # the payload is real
    assert (tmp_path / "control").exists()
    code, _, err = mimcast(
        capsys, "predict", "--run-dir", run, "--input", bad, "--horizon", 2, "--output",
        tmp_path / "out.npy",
    )  # fmt: skip
    assert_one_line_error(code, err, "cannot read")
    assert not marker.exists() and not (tmp_path / "out.npy").exists()


# ---------------- bad input, one line, exit 2
def _bad_files(root: Path) -> dict[str, Path]:
    (root / "broken.yaml").write_text("train:\n  steps: [1\n")
    (root / "evil.yaml").write_text("train: !!python/object/apply:os.system ['touch pwned']\n")
    np.save(root / "rank2.npy", np.zeros((20, 16), np.float32))
    (root / "garbage.npy").write_bytes(b"\x93NUMPY\x09\x00garbage")
    return {
        "broken": root / "broken.yaml",
        "evil": root / "evil.yaml",
        "rank2": root / "rank2.npy",
        "garbage": root / "garbage.npy",
        "nan": _series(root / "nan.npy", 5),
    }


TRAIN_CASES = [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--steps", "many"], "argument --steps: invalid int value"),
    (["--set", "train.foo=1"], "unknown config key train.foo"),
    (["--set", "train.steps=many"], "train.steps must be an integer"),
    (["--set", "model.hidden=4"], "model.hidden must be a list"),
    (["--set", "data.options.canvas=abc"], "mmnist: option canvas must be an integer, got 'abc'"),
    (["--set", "data.options.bogus=1"], "unknown option(s) bogus for dataset 'mmnist'"),
    (["--config", "{broken}"], "is not valid YAML"),
    (["--config", "{evil}"], "could not determine a constructor for the tag"),
    (["--config", "{root}/none.yaml"], "config file not found"),
    (["--data", "custom"], "needs root=<path to its files>"),
    (["--data", "custom", "--data-root", "{root}/none.npy"], "does not exist"),
    (["--data", "custom", "--data-root", "{rank2}"], "rank 2 (shape (20, 16)); without axis"),
    (["--data", "custom", "--data-root", "{garbage}"], "not a readable .npy file"),
    (["--data", "custom", "--data-root", "{nan}"], "NaN or inf values at time index 5"),
]


def test_bad_train_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys) -> None:
    files = {k: str(v) for k, v in _bad_files(tmp_path).items()}
    before = listing(tmp_path)
    for args, message in TRAIN_CASES:
        args = [a.format(root=tmp_path, **files) for a in args]
        flags, sets = ([], args[1:]) if args[0] == "--set" else (args, [])  # one --set
        tiny = CUSTOM if "custom" in args else TINY
        code, _, err = mimcast(
            capsys, "train", "--run-dir", tmp_path / "r", "--steps", 2, *flags, "--set", *tiny,
            *sets,
        )  # fmt: skip
        assert_one_line_error(code, err, message)
        assert listing(tmp_path) == before, args
    assert not (tmp_path / "pwned").exists()


def test_bad_input_never_touches_an_existing_run(run, tmp_path, capsys) -> None:
    before = listing(run)
    for args, message in (
        (["train", "--run-dir", run, "--steps", 2, "--set", *TINY], "pass --resume"),
        (["train", "--run-dir", run, "--overwrite", "--steps", 2, "--set", *TINY,
          "data.options.canvas=abc"], "option canvas must be an integer"),  # the old run kept
        (["train", "--run-dir", run, "--resume", "--overwrite"], "exclude each other"),
        (["train", "--run-dir", run, "--resume", "--set", *TINY, "model.hidden=[8,8]"],
         "was made with another model or data set"),
        (["evaluate", "--run-dir", run, "--split", "nope"], "invalid choice: 'nope'"),
        (["evaluate", "--run-dir", run, "--data", "custom"], "dataset 'custom' needs root"),
    ):  # fmt: skip
        code, _, err = mimcast(capsys, *args)
        assert_one_line_error(code, err, message)
        assert listing(run) == before, args


def test_bad_prediction_input_is_refused_and_nothing_is_written(run, tmp_path, capsys) -> None:
    good = tmp_path / "good.npy"
    np.save(good, np.full((3, 1, 32, 32), 100.0, np.float32))
    arrays = {
        "channels": (np.zeros((3, 2, 32, 32), np.float32), "frames are (2, 32, 32) (C, H, W)"),
        "negative": (np.full((3, 1, 32, 32), -300.0, np.float32), "wrong units?"),
        "strings": (np.full((3, 1, 32, 32), "a"), "is not real numbers"),
    }
    for name, (array, _) in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
    existing = tmp_path / "existing.npy"
    np.save(existing, np.ones(3))
    (tmp_path / "alias.npy").symlink_to(good)
    before = listing(tmp_path)
    cases = [([f"{name}.npy", "out.npy"], message) for name, (_, message) in arrays.items()] + [
        (["good.npy", "alias.npy", "--overwrite"], "refusing to write over the input"),
        (["good.npy", "existing.npy"], "existing.npy exists: pass --overwrite"),
        (["good.npy", "nowhere/out.npy"], "output folder"),
        (["good.npy", "out.txt"], "--output must end in .npy or .npz or .nc"),
        (["good.npy", "out.npy", "--horizon", "0"], "--horizon must be in [1, 1000]"),
        (["missing.npy", "out.npy"], "input file not found"),
    ]
    for (inp, out, *more), message in cases:
        code, _, err = mimcast(
            capsys, "predict", "--run-dir", run, "--input", tmp_path / inp, "--horizon", 2,
            "--output", tmp_path / out, *more,
        )  # fmt: skip
        assert_one_line_error(code, err, message)
        assert listing(tmp_path) == before, (inp, out)
    assert np.load(good).shape == (3, 1, 32, 32) and np.load(existing).shape == (3,)


def test_bench_json_is_not_overwritten(tmp_path, capsys) -> None:
    target = tmp_path / "bench.json"
    target.write_text("keep")
    code, _, err = mimcast(capsys, "bench", "--json", target)
    assert_one_line_error(code, err, "exists: pass --overwrite")
    assert target.read_text() == "keep"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hidden", "0"], "--hidden must be >= 1"),
        (["--seq-len", "11"], "context_len <= seq_len - 2"),
        (["--context-len", "0"], "context_len <= seq_len - 2"),
        (["--steps", "-1"], "steps must be a positive integer"),
    ],
)
def test_bench_rejects_bad_sizes_before_running(tmp_path, capsys, args, message) -> None:
    target = tmp_path / "bench.json"
    code, _, err = mimcast(capsys, "bench", *args, "--json", target)
    assert_one_line_error(code, err, message)
    assert not target.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "foo"], "unknown model 'foo'"),
        (["--layers", "1"], "mim needs at least 2 layers"),
        (["--set", "model.filter_size=4"], "model.filter_size must be odd"),
        (["--set", "train.steps=3"], "--set takes model.* keys only"),
    ],
)
def test_bench_refuses_a_model_it_cannot_build_at_once(capsys, args, message) -> None:
    """Defect 5: these used to hang forever (the child failed, the parent waited)."""
    started = time.monotonic()
    code, _, err = mimcast(capsys, "bench", "--steps", 1, *args)
    assert_one_line_error(code, err, message)
    assert time.monotonic() - started < 30


def _dies(results) -> None:
    os._exit(3)  # a child that dies without a word (killed, out of memory)


def _fails(results) -> None:
    results.put(("error", "RuntimeError: out of memory"))


def test_bench_never_waits_for_a_dead_child() -> None:
    from mimcast.cli.bench import run_in_child
    from mimcast.errors import MimcastError

    with pytest.raises(MimcastError, match="the optimised measurement died .exit code 3."):
        run_in_child(_dies, (), "optimised")
    with pytest.raises(MimcastError, match="measurement failed: RuntimeError: out of memory"):
        run_in_child(_fails, (), "plain_fp32")


def test_tracebacks_that_are_now_one_line(run, tmp_path, capsys) -> None:
    """Defect 9, one case each, nothing written anywhere."""
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "a-folder.yaml").mkdir()
    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 32, 32), np.float32))
    (tmp_path / "zero.npy").write_bytes(b"")
    predict = ["predict", "--run-dir", run, "--horizon", 2, "--output", tmp_path / "o.npy"]
    train = ["train", "--run-dir", tmp_path / "new", "--steps", 1, "--set", *TINY]
    before = {"run": listing(run), "tmp": listing(tmp_path)}
    for args, message in (
        (["evaluate", "--run-dir", run, "--device", NO_SUCH_GPU], NO_SUCH_GPU_REFUSAL),
        ([*predict, "--input", tmp_path / "empty.npy"], "the context is empty"),
        ([*predict, "--input", tmp_path / "zero.npy"], "cannot read"),
        ([*train, "--config", tmp_path / "binary.yaml"], "is not a text (UTF-8 YAML) file"),
        ([*train, "--config", tmp_path / "a-folder.yaml"], "is a folder, not a YAML file"),
        ([*train, "--device", "gpu"], "train.device must be auto, cpu, cuda or cuda:N"),
    ):
        code, _, err = mimcast(capsys, *args)
        assert_one_line_error(code, err, message)
        assert {"run": listing(run), "tmp": listing(tmp_path)} == before, args


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda ck: (ck / "best.json").write_text('{"dir": 5}'), "is damaged: it names 5"),
        (lambda ck: (ck / "best.json").write_text("[1, 2"), "is damaged"),
        (
            lambda ck: (next(ck.glob("step-*")) / "state.json").write_text('{"format": 1}'),
            "is not a mimcast checkpoint",
        ),
        (
            lambda ck: (next(ck.glob("step-*")) / "state.json").write_text(
                '{"format": "mimcast-checkpoint-1", "step": "x"}'
            ),
            "is damaged: bad or missing 'step'",
        ),
    ],
    ids=["pointer-dir-5", "pointer-not-json", "state-foreign", "state-bad-step"],
)
def test_a_damaged_pointer_or_state_is_one_line(run, capsys, damage, message) -> None:
    damage(run / "checkpoints")
    before = listing(run)
    code, _, err = mimcast(capsys, "evaluate", "--run-dir", run)
    assert_one_line_error(code, err, message)
    assert listing(run) == before
