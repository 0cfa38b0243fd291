"""Helpers the CLI-level tests share: run `mimcast` in-process, snapshot a folder, check that
a refusal is one line with the right exit code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mimcast import cli

# A CUDA device that no machine has, so that its refusal is tested with and without a GPU.
NO_SUCH_GPU = "cuda:99"
NO_SUCH_GPU_REFUSAL = (
    f"device {NO_SUCH_GPU}: this machine has"
    if torch.cuda.is_available()
    else f"device {NO_SUCH_GPU} was asked for, but no CUDA device is available"
)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """`mimcast ARGS` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as e:  # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def listing(root: Path) -> dict[str, tuple]:
    """Every path under root with its size, modification time and (for small files) bytes:
    the 'nothing written, nothing changed' check. Symbolic links are listed, not followed;
    folders by name only (a temporary file made and removed inside one changes its mtime)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if p.is_dir() and not p.is_symlink():
            out[str(p.relative_to(root))] = ("folder",)
            continue
        small = p.is_file() and not p.is_symlink() and st.st_size < 1 << 16
        out[str(p.relative_to(root))] = (
            st.st_size,
            st.st_mtime_ns,
            p.read_bytes() if small else None,
        )
    return out


def error_lines(err: str) -> list[str]:
    return [
        line
        for line in err.replace("\r", "\n").splitlines()
        if line.strip() and not re.search(r"\d+%\|", line)  # the progress bar
    ]


def assert_one_line_error(code: int, err: str, message: str, exit_code: int = 2) -> None:
    """Exit code 2 (1 for a failing disk) and one line `mimcast: error: ...`."""
    lines = error_lines(err)
    assert code == exit_code, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("mimcast: error: "), err
    assert message in lines[0], err


# `mimcast ARGS` with every training step slowed down by `delay` seconds, so that a kill, a
# signal or a second process lands mid-run.
SLOW_MAIN = """
import sys, time
from mimcast.training import trainer
step, delay = trainer.Trainer.train_step, float(sys.argv[1])
def slow(self, frames):
    time.sleep(delay)
    return step(self, frames)
trainer.Trainer.train_step = slow
from mimcast.cli import main
sys.exit(main(sys.argv[2:]))
"""


def spawn_slow(*args, delay: float = 0.1) -> subprocess.Popen:
    """A real `mimcast` process (slowed training steps), output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_MAIN, str(delay), *map(str, args)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until(proc: subprocess.Popen, ready, what: str, timeout: float = 120) -> None:
    """Wait for ready() while proc runs; fail the test if it ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended before {what}: {proc.returncode}\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
