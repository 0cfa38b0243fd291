"""One process trains in a run folder at a time: real concurrent processes and real kills.

Defect 4: two `train --run-dir R` (or two `--resume`) at once used to both run and mix their
checkpoints, config and log.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mimcast.runs.rundir import RunDir
from tests.helpers import assert_one_line_error, listing, run_cli, spawn_slow, wait_until
from tests.tiny import tiny_sets

TINY = tiny_sets()


def _args(run: Path, *flags, steps: int = 200) -> list:
    return ["train", "--run-dir", run, "--steps", steps, "--no-eval", *flags, "--set", *TINY]


def _lock_owner(run: Path) -> dict:
    try:
        return json.loads((run / RunDir.LOCK).read_text() or "{}")
    except (OSError, ValueError):
        return {}


@pytest.fixture
def holder(tmp_path):
    """A training process that holds the lock of tmp_path/run (and has a checkpoint)."""
    run = tmp_path / "run"
    proc = spawn_slow(*_args(run))
    wait_until(proc, lambda: (run / "checkpoints" / "best.json").is_file(), "a checkpoint")
    assert _lock_owner(run)["pid"] == proc.pid
    yield run, proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=60)


def test_a_second_training_is_refused_while_one_runs(holder, capsys) -> None:
    run, proc = holder
    for flags in (["--resume"], ["--overwrite"], []):
        before = {k: v for k, v in listing(run).items() if k != "log.csv"}
        code, _, err = run_cli(capsys, *_args(run, *flags))
        busy = f"in use by another mimcast process (train, PID {proc.pid}"
        assert_one_line_error(code, err, busy if flags else "already holds a run")
        after = {k: v for k, v in listing(run).items() if k != "log.csv"}
        # the running process may have saved a checkpoint meanwhile; nothing else changed
        assert {k for k in after if "checkpoints" not in k} == {
            k for k in before if "checkpoints" not in k
        }


def test_two_real_processes_exclude_each_other(holder) -> None:
    run, proc = holder
    second = spawn_slow(*_args(run, "--resume"))
    out, err = second.communicate(timeout=120)
    assert second.returncode == 2, err
    assert f"in use by another mimcast process (train, PID {proc.pid}" in err
    assert proc.poll() is None  # the first one is still training


def test_evaluate_and_predict_read_while_training_runs(holder, capsys, tmp_path) -> None:
    import numpy as np

    run, _ = holder
    code, _, err = run_cli(capsys, "evaluate", "--run-dir", run)
    assert code == 0, err
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.full((3, 1, 32, 32), 100.0, np.float32))
    code, _, err = run_cli(
        capsys, "predict", "--run-dir", run, "--input", ctx, "--horizon", 2, "--output",
        tmp_path / "p.npy",
    )  # fmt: skip
    assert code == 0, err


def test_a_killed_holder_leaves_a_stale_lock_that_is_taken_over(holder) -> None:
    run, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert _lock_owner(run)["pid"] == proc.pid  # the dead process's lock file stays...
    resumed = subprocess.run(
        [sys.executable, "-m", "mimcast", *map(str, _args(run, "--resume", steps=6))],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr  # ...and is taken over, saying so
    assert f"took over the stale lock of PID {proc.pid} (not running)" in resumed.stdout
    assert _lock_owner(run) == {}  # released at the end
