"""Trivial baselines on the quick preset's test sequences (README, "What the main job gives").

    python scripts/mmnist_baselines.py [--sequences 256]

Per-frame MSE (sum over the 64x64 pixels, averaged over sequences) of predicting blank frames
and of repeating the last context frame, on the first N test sequences of `mmnist` (10 -> 10).
"""

from __future__ import annotations

import argparse

from mimcast.data import build_dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", type=int, default=256)
    n = p.parse_args().sequences
    ds = build_dataset("mmnist", "test")
    ctx = ds.context_len
    blank = copy = 0.0
    for i in range(n):
        x = ds[i]  # (T, C, H, W) in [0, 1]
        future = x[ctx:]
        blank += (future**2).sum(dim=(1, 2, 3)).mean().item()
        copy += ((future - x[ctx - 1 : ctx]) ** 2).sum(dim=(1, 2, 3)).mean().item()
    print(
        f"{n} sequences: blank frames MSE/frame {blank / n:.1f}, "
        f"repeat last context frame {copy / n:.1f}"
    )


if __name__ == "__main__":
    main()
