"""Where a training step's (or a forecast's) time goes: the share of the convolutions.

    python scripts/profile_step.py [--hidden 32] [--variant paper] [--layer-norm] [--infer]

One step of the bench's model (4 layers, filter 5, 64x64x1 patch 4, batch 8, 10 -> 10) under
bf16 autocast + channels_last, profiled by torch.profiler after two warm-up steps. Prints the
ten most expensive operators and the share of every convolution (forward and backward): the
part of the step that only faster convolutions can shorten (docs/performance.md).
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

import mimcast

CONV_OPS = ("aten::convolution_backward", "aten::mkldnn_convolution", "aten::_convolution")


def step_fn(args: argparse.Namespace):
    model = mimcast.create_model(
        "mim", in_channels=1, height=64, width=64, patch_size=4, hidden=(args.hidden,) * 4,
        filter_size=5, variant=args.variant, layer_norm=args.layer_norm,
    ).to(memory_format=torch.channels_last)  # fmt: skip
    frames = torch.rand(8, 20, 1, 64, 64)
    mask = (torch.rand(8, 9, 1, 1, 1) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def train() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            preds = model(frames, context_len=10, mask=mask)
        torch.mean((preds.float() - frames[:, 1:]) ** 2).backward()
        opt.step()

    def infer() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model.predict(frames[:, :10], 10)

    return infer if args.infer else train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--variant", default="paper", choices=["paper", "openstl"])
    p.add_argument("--layer-norm", action="store_true")
    p.add_argument("--infer", action="store_true", help="a 10-frame forecast, not a train step")
    args = p.parse_args()
    fn = step_fn(args)
    fn(), fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_OPS)
    print(events.table(sort_by="self_cpu_time_total", row_limit=10))
    kind = "forecast" if args.infer else "training step"
    print(f"{kind}: {total / 1e3:.0f} ms of operator time, convolutions {100 * conv / total:.0f}%")


if __name__ == "__main__":
    main()
