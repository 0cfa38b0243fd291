"""`mimcast bench`: speed and memory of one model config, optimised path against plain eager fp32.

Measured in one run, each path in a fresh child process (so peak RSS is its own):
- training and inference sequences/s of the optimised path (mixed precision, channels_last,
  batched input convolutions) and of a plain eager float32 path of the same model, and ratios;
- with `checkpoint_steps`, a third path: the optimised one with activation checkpointing per
  time step, so its peak memory and speed sit beside the path that stores activations;
- achieved TFLOP/s (FLOPs of one step counted by torch.utils.flop_counter);
- a convolution-bound ceiling computed on the spot: every convolution of the step timed alone
  at its own shape and precision (forward + backward for training), summed;
- peak resident memory of the training steps and of inference, each its own high-water mark
  (Linux), and of the whole child process.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from mimcast.errors import ConfigError
from mimcast.models import create_model


@dataclass
class BenchConfig:
    model: str = "mim"
    hidden: int = 64
    layers: int = 4
    filter_size: int = 5
    patch_size: int = 4
    size: int = 64
    channels: int = 1
    batch: int = 8
    seq_len: int = 20
    context_len: int = 10
    variant: str = "paper"
    layer_norm: bool = False
    steps: int = 5  # timed steps per measurement (after 2 warm-up steps)
    checkpoint_steps: bool = False  # also measure the optimised path with checkpointing
    threads: int = 0  # torch threads; 0 = torch's default

    def __post_init__(self) -> None:
        """Reject a config the children would fail on, with one line naming the field."""
        positive = ("hidden", "layers", "filter_size", "patch_size", "size", "channels", "batch")
        for name in (*positive, "steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"bench: {name} must be a positive integer, got {value!r}")
        if self.size % self.patch_size:
            raise ConfigError(
                f"bench: size {self.size} is not a multiple of patch_size {self.patch_size}"
            )
        if not 1 <= self.context_len <= self.seq_len - 2:
            raise ConfigError(
                f"bench: need 1 <= context_len <= seq_len - 2, got context_len "
                f"{self.context_len} and seq_len {self.seq_len}"
            )


# The paths a bench can measure: name -> (optimised, activation checkpointing per time step).
PATHS = {
    "optimised": (True, False),
    "checkpointed": (True, True),
    "plain_fp32": (False, False),
}


def _build(cfg: BenchConfig, optimised: bool, checkpointed: bool) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(
        cfg.model,
        in_channels=cfg.channels,
        height=cfg.size,
        width=cfg.size,
        patch_size=cfg.patch_size,
        hidden=(cfg.hidden,) * cfg.layers,
        filter_size=cfg.filter_size,
        layer_norm=cfg.layer_norm,
        variant=cfg.variant,
    )
    if optimised:
        model = model.to(memory_format=torch.channels_last)
        model.checkpoint_steps = checkpointed
    else:
        model.batch_input_convs = False
    return model


def _inputs(cfg: BenchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(cfg.batch, cfg.seq_len, cfg.channels, cfg.size, cfg.size, generator=g)
    mask = torch.rand(cfg.batch, cfg.seq_len - cfg.context_len - 1, 1, 1, 1, generator=g) > 0.5
    return frames, mask.float()


def _autocast(optimised: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=optimised)


def _train_step(model, opt, frames, mask, cfg, optimised) -> None:
    opt.zero_grad(set_to_none=True)
    with _autocast(optimised):
        preds = model(frames, cfg.context_len, mask)
    loss = torch.mean((preds.float() - frames[:, 1:]) ** 2)
    loss.backward()
    opt.step()


def _reset_peak_rss() -> None:
    """Start a new resident-memory high-water mark (Linux; elsewhere the process peak stays)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    """Resident-memory high-water mark since the last reset (Linux), else since the start.

    It includes the model, the libraries and memory the allocator kept from earlier phases.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seconds_per_call(fn: Callable[[], object], steps: int, warmup: int = 2) -> float:
    """Mean wall-clock seconds of `steps` calls of fn, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def _measure(cfg: BenchConfig, path: str) -> dict[str, Any]:
    """Run in a child process: times, FLOPs and peak RSS of one path."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    optimised, checkpointed = PATHS[path]
    model = _build(cfg, optimised, checkpointed)
    frames, mask = _inputs(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def infer() -> None:
        with _autocast(optimised):
            model.predict(frames[:, : cfg.context_len], cfg.seq_len - cfg.context_len)

    # Inference first: memory the allocator keeps after a training step would hide its peak.
    model.eval()
    _reset_peak_rss()
    infer_s = seconds_per_call(infer, cfg.steps)
    infer_rss = _peak_rss_mb()
    model.train()
    _reset_peak_rss()
    train_s = seconds_per_call(
        lambda: _train_step(model, opt, frames, mask, cfg, optimised), cfg.steps
    )
    train_rss = _peak_rss_mb()
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        _train_step(model, opt, frames, mask, cfg, optimised)
    train_flops = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.predict(frames[:, : cfg.context_len], cfg.seq_len - cfg.context_len)
    infer_flops = counter.get_total_flops()
    out = {
        "train_seq_s": cfg.batch / train_s,
        "infer_seq_s": cfg.batch / infer_s,
        "train_tflops": train_flops / train_s / 1e12,
        "infer_tflops": infer_flops / infer_s / 1e12,
        "train_flops": train_flops,
        "infer_flops": infer_flops,
        "train_step_s": train_s,
        "infer_s": infer_s,
        "train_peak_rss_mb": train_rss,
        "infer_peak_rss_mb": infer_rss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if path == "optimised":
        out.update(_conv_ceiling(cfg, model, frames, mask, train_s, infer_s))
    return out


def _conv_ceiling(cfg, model, frames, mask, train_s: float, infer_s: float) -> dict[str, float]:
    """Time every convolution of a step alone, at its own shape and precision, and sum."""
    calls: Counter = Counter()

    def hook(mod: nn.Conv2d, args, _out) -> None:
        calls[(id(mod), tuple(args[0].shape), args[0].requires_grad)] += 1

    convs = {id(m): m for m in model.modules() if isinstance(m, nn.Conv2d)}
    handles = [m.register_forward_hook(hook) for m in convs.values()]
    with _autocast(True):
        model(frames, cfg.context_len, mask)
    for h in handles:
        h.remove()
    fwd_total = bwd_total = 0.0
    for (mid, shape, needs_grad), n in calls.items():
        conv = convs[mid]
        x = torch.randn(shape).to(memory_format=torch.channels_last).requires_grad_(needs_grad)
        with _autocast(True):
            y = conv(x)
        g = torch.randn_like(y)

        def fwd(conv=conv, x=x) -> None:
            with torch.no_grad(), _autocast(True):
                conv(x)

        def fwd_bwd(conv=conv, x=x, g=g) -> None:
            with _autocast(True):
                y = conv(x)
            y.backward(g)

        t_f = seconds_per_call(fwd, 3)
        t_fb = seconds_per_call(fwd_bwd, 3)
        fwd_total += n * t_f
        bwd_total += n * t_fb
    return {
        "conv_ceiling_train_s": bwd_total,
        "conv_ceiling_fwd_s": fwd_total,
        "train_vs_ceiling": bwd_total / train_s,
        "conv_calls": sum(calls.values()),
    }


def _child(cfg: dict, path: str, queue) -> None:
    queue.put(_measure(BenchConfig(**cfg), path))


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Measure every path, each in a fresh process; returns the numbers and their ratios."""
    ctx = mp.get_context("spawn")
    results = {}
    for name in PATHS:
        if name == "checkpointed" and not cfg.checkpoint_steps:
            continue
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(asdict(cfg), name, queue))
        proc.start()
        results[name] = queue.get()
        proc.join()
    o, p = results["optimised"], results["plain_fp32"]
    results["ratio_train"] = o["train_seq_s"] / p["train_seq_s"]
    results["ratio_infer"] = o["infer_seq_s"] / p["infer_seq_s"]
    results["config"] = asdict(cfg)
    results["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    return results


def _row(label: str, m: dict[str, Any]) -> str:
    return (
        f"| {label} | {m['train_seq_s']:.2f} | {m['infer_seq_s']:.2f} | {m['train_tflops']:.3f} "
        f"| {m['infer_tflops']:.3f} | {m['train_peak_rss_mb']:.0f} | {m['infer_peak_rss_mb']:.0f} |"
    )


def format_bench(r: dict[str, Any]) -> str:
    c, o, p = r["config"], r["optimised"], r["plain_fp32"]
    head = (
        f"{c['model']} ({c['variant']}) {c['layers']}x{c['hidden']}, filter {c['filter_size']}, "
        f"{c['size']}x{c['size']}x{c['channels']} patch {c['patch_size']}, batch {c['batch']}, "
        f"{c['context_len']}->{c['seq_len'] - c['context_len']}"
    )
    rows = [
        head,
        "",
        "| path | train seq/s | infer seq/s | train TFLOP/s | infer TFLOP/s "
        "| train peak RSS MB | infer peak RSS MB |",
        "|---|---|---|---|---|---|---|",
        _row("optimised (bf16-mixed, channels_last)", o),
        *(
            [_row("optimised + activation checkpointing", r["checkpointed"])]
            if "checkpointed" in r
            else []
        ),
        _row("plain eager fp32", p),
        f"| ratio optimised / plain | {r['ratio_train']:.2f}x | {r['ratio_infer']:.2f}x | | | | |",
        "",
        f"Convolution-bound ceiling of a training step: {o['conv_ceiling_train_s']:.3f} s for "
        f"{o['conv_calls']} convolution calls timed alone; the step takes "
        f"{o['train_step_s']:.3f} s, i.e. {100 * o['train_vs_ceiling']:.0f}% of the ceiling.",
    ]
    return "\n".join(rows)


def main_json(cfg: BenchConfig) -> str:
    return json.dumps(run_bench(cfg), indent=1)
