"""What the baselines add to an evaluation: `mimcast evaluate` of a run folder with
`--baselines none` and `--baselines all`, timed alternately in this process.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/time_baselines.py RUN_DIR [--repeats 5]

RUN_DIR is a trained run folder (made here if it does not exist, by the quick preset's
`mimcast train --steps 1 --no-eval`: the model's weights do not change what an evaluation costs).
Its eval.num_sequences (the quick preset's 256 Moving MNIST test sequences) are evaluated on the
CPU, after one untimed evaluation of each kind. Each repeat runs both kinds, the one first that
ran second in the repeat before, so that a slow spell of a shared machine falls on both alike.
Prints each evaluation's CPU seconds (time.process_time) and wall seconds, their medians, and
the median over the repeats of the ratio all / none of each: what the baselines add (issue
#22: at most 10%).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

from mimcast.cli import main as mimcast

KINDS = ("none", "all")


def evaluate(run_dir: Path, baselines: str) -> tuple[float, float]:
    """CPU and wall seconds of one `mimcast evaluate` (its printed output swallowed)."""
    argv = ["evaluate", "--run-dir", str(run_dir), "--device", "cpu", "--baselines", baselines]
    cpu, wall = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = mimcast(argv)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if code != 0:
        sys.exit(f"mimcast {' '.join(argv)} failed with exit status {code}")
    return cpu, wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if not args.run_dir.exists():
        train = ["train", "--steps", "1", "--no-eval", "--device", "cpu"]
        if mimcast([*train, "--run-dir", str(args.run_dir)]) != 0:
            return 1
    for kind in KINDS:  # warm-up: imports, the data set's cache, first-call allocations
        evaluate(args.run_dir, kind)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
    for r in range(args.repeats):
        for kind in KINDS if r % 2 == 0 else KINDS[::-1]:
            cpu, wall = evaluate(args.run_dir, kind)
            times[kind].append((cpu, wall))
            print(f"repeat {r + 1} --baselines {kind:4s}: cpu {cpu:6.2f} s, wall {wall:6.2f} s")
    med = {k: [statistics.median(x[i] for x in v) for i in (0, 1)] for k, v in times.items()}
    for k, (cpu, wall) in med.items():
        print(f"median --baselines {k:4s}: cpu {cpu:6.2f} s, wall {wall:6.2f} s")
    # the ratio within each repeat (both kinds ran back to back), then its median
    pairs = list(zip(times["all"], times["none"], strict=True))
    ratio = [statistics.median(a[i] / n[i] for a, n in pairs) for i in (0, 1)]
    print(f"all / none, median over the repeats: cpu {ratio[0]:.3f}, wall {ratio[1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
