"""One quick-preset training step, timed alternately in two checkouts of mimcast.

    python scripts/compare_step_time.py OLD_SRC NEW_SRC [--rounds 6]

OLD_SRC and NEW_SRC are the `src` folders of two checkouts (e.g. a `git worktree` of an older
commit). Each round runs one subprocess per checkout, with PYTHONPATH switched between them,
alternately, so that a slow spell of a shared machine falls on both alike; each subprocess
times 10 training steps of the quick preset's model and batch (MIM 4x32, filter 3, patch 4,
batch 8, 64x64x1, 10 -> 10, bf16 autocast, channels_last, Adam, a scheduled-sampling mask)
after two warm-up steps and prints its median. The script prints the median of each checkout
over the rounds and their ratio: how many old steps one new step costs (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def time_one_step() -> float:
    """Median seconds of one training step, in whichever mimcast is importable."""
    import torch

    import mimcast

    torch.manual_seed(0)
    model = mimcast.create_model(
        "mim", in_channels=1, height=64, width=64, patch_size=4, hidden=(32,) * 4, filter_size=3
    ).to(memory_format=torch.channels_last)
    frames = torch.rand(8, 20, 1, 64, 64)  # (B, T, C, H, W)
    mask = (torch.rand(8, 9, 1, 1, 1) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            preds = model(frames, 10, mask)
        torch.mean((preds.float() - frames[:, 1:]) ** 2).backward()
        opt.step()

    step(), step()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_src")
    parser.add_argument("new_src")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(time_one_step())
        return
    ms: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for name, src in (("old", args.old_src), ("new", args.new_src)):
            env = dict(os.environ, PYTHONPATH=src)
            cmd = [sys.executable, __file__, src, src, "--child"]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            ms[name].append(1000 * float(out.stdout.split()[-1]))
        print(f"round {r}: old {ms['old'][-1]:.0f} ms, new {ms['new'][-1]:.0f} ms", flush=True)
    old, new = statistics.median(ms["old"]), statistics.median(ms["new"])
    print(f"median ms/step: old {old:.0f}, new {new:.0f}; old/new = {old / new:.3f}")


if __name__ == "__main__":
    main()
