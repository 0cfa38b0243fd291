"""Would merging the convolutions that read the same tensor make a MIM step faster?

In a MIM block, several convolutions read the same tensor at different points in time:
H^l_t is read by layer l's recurrent convolution at t+1, by layer l+1's input convolution at t
and (the MIM-N difference convolution is linear) by layer l+1's MIM-N input convolution;
M^l_t by layer l's output convolution and layer l+1's memory convolution; C^l_t by layer l's
output convolution and, at t+1, by MIM-S; N_t by MIM-N's output and recurrent convolutions.
Merging each group into one convolution computes the same numbers with fewer, wider calls.

This script times each group both ways, alone, at the shapes of `mimcast bench` (batch 8,
16x16 grid after patch 4, filter 5, bf16 autocast, channels_last), forward only and forward +
backward, and prints the ratio separate / merged (> 1: merging is faster).

    python scripts/bench_merged_convs.py [--hidden 64 32] [--repeats 20]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from mimcast.cli.bench import seconds_per_call


def groups(c: int) -> dict[str, list[int]]:
    """Output channels of the convolutions reading one tensor (paper MIM block, hidden c)."""
    return {
        "H: conv_h + next conv_x + next MIM-N conv_x": [3 * c, 6 * c, 4 * c],
        "M: conv_o (M half) + next conv_m": [c, 3 * c],
        "C: conv_o (C half) + MIM-S conv_c": [c, 4 * c],
        "N: MIM-N conv_o + conv_n": [c, 3 * c],
    }


def compare(c: int, outs: list[int], train: bool, repeats: int, batch: int, grid: int) -> float:
    """Seconds separate / seconds merged for one group."""
    x = torch.randn(batch, c, grid, grid).to(memory_format=torch.channels_last)
    x.requires_grad_(train)
    weights = [torch.randn(o, c, 5, 5, requires_grad=train) for o in outs]
    merged = torch.cat([w.detach() for w in weights]).requires_grad_(train)

    def run(ws: list[torch.Tensor]) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.set_grad_enabled(train):
            ys = [F.conv2d(x, w, padding=2) for w in ws]
        if train:
            torch.autograd.backward([y.float().sum() for y in ys])

    return seconds_per_call(lambda: run(weights), repeats) / seconds_per_call(
        lambda: run([merged]), repeats
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 32])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--grid", type=int, default=16)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| hidden | tensor: convolutions merged | forward | forward + backward |")
    print("|---|---|---|---|")
    for c in a.hidden:
        for name, outs in groups(c).items():
            fwd = compare(c, outs, False, a.repeats, a.batch, a.grid)
            bwd = compare(c, outs, True, a.repeats, a.batch, a.grid)
            print(f"| {c} | {name} | {fwd:.2f}x | {bwd:.2f}x |")


if __name__ == "__main__":
    main()
