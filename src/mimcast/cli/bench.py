"""`mimcast bench`: speed and memory of one model, optimised path against plain eager fp32.

Measured in one run, each path in a fresh child process (so peak RSS is its own):
- training and inference sequences/s of the optimised path (bf16 mixed precision,
  channels_last, batched input convolutions) and of a plain eager float32 path of the same
  model, and their ratios;
- with `grad_checkpointing`, a third path: the optimised one with activation checkpointing per
  time step, so its peak memory and speed sit beside the path that stores activations;
- achieved TFLOP/s (FLOPs of one step counted by torch.utils.flop_counter);
- a convolution-bound ceiling computed on the spot: every convolution of the step timed alone
  at its own shape and precision (forward + backward for training), summed;
- peak resident memory of the training steps and of inference, each its own high-water mark.
The model is a ModelConfig (by default the paper preset's); a child that fails reports its
error and the bench stops with one line, never waits for it forever.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mimcast.errors import ConfigError, MimcastError
from mimcast.machine import describe, one_line
from mimcast.models import ModelConfig, build_model
from mimcast.training.distributed import init_from_env
from mimcast.training.precision import autocast


@dataclass(frozen=True)
class BenchConfig:
    model: ModelConfig  # with its frame shape
    device: str = "cpu"
    batch: int = 8
    seq_len: int = 20
    context_len: int = 10
    steps: int = 5  # timed steps per measurement (after 2 warm-up steps)
    grad_checkpointing: bool = False  # also measure the optimised path with checkpointing
    threads: int = 0  # torch threads; 0 = torch's default

    def __post_init__(self) -> None:
        """Reject a config the children would fail on, with one line naming the field."""
        for name in ("batch", "seq_len", "steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"bench: {name} must be a positive integer, got {value!r}")
        if not 1 <= self.context_len <= self.seq_len - 2:
            raise ConfigError(
                f"bench: need 1 <= context_len <= seq_len - 2, got context_len "
                f"{self.context_len} and seq_len {self.seq_len}"
            )
        build_model(self.model)  # an unbuildable model fails here, not in a child
        init_from_env(self.device)  # a CUDA device on a machine without one, too

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchConfig:
        return cls(**{**d, "model": ModelConfig.from_dict(d["model"])})


# The paths a bench can measure: name -> (optimised, activation checkpointing per time step).
PATHS = {
    "optimised": (True, False),
    "checkpointed": (True, True),
    "plain_fp32": (False, False),
}


def _build(cfg: BenchConfig, optimised: bool, checkpointed: bool) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(cfg.model)
    if optimised:
        return model.to(memory_format=torch.channels_last).set_grad_checkpointing(checkpointed)
    return model.set_batched_input_convs(False)


def _inputs(cfg: BenchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    m = cfg.model
    frames = torch.rand(cfg.batch, cfg.seq_len, m.in_channels, m.height, m.width, generator=g)
    mask = torch.rand(cfg.batch, cfg.seq_len - cfg.context_len - 1, 1, 1, 1, generator=g) > 0.5
    return frames.to(cfg.device), mask.float().to(cfg.device)


def _precision(optimised: bool) -> str:
    return "bf16-mixed" if optimised else "32"


def train_step(model, opt, frames, mask, *, context_len: int, precision: str) -> None:
    """One optimizer step: the same harness for every model measured."""
    opt.zero_grad(set_to_none=True)
    with autocast(frames.device, precision):
        preds = model(frames, context_len, mask)
    loss = torch.mean((preds.float() - frames[:, 1:]) ** 2)
    loss.backward()
    opt.step()


def _reset_peak_rss(device: torch.device) -> None:
    """Start a new high-water mark: of resident memory (Linux; elsewhere the process peak
    stays), or of CUDA memory on a GPU."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb(device: torch.device) -> float:
    """Memory high-water mark since the last reset: resident memory (Linux; else since the
    start), or CUDA memory allocated on a GPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        status = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        status = []
    for line in status:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seconds_per_call(
    fn: Callable[[], object], steps: int, warmup: int = 2, device: torch.device | None = None
) -> float:
    """Mean wall-clock seconds of `steps` calls of fn, after `warmup` untimed calls (on CUDA,
    synchronised, so that queued kernels are counted)."""
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else _nothing
    for _ in range(warmup):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t) / steps


def _nothing() -> None:
    pass


def _flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def _measure(cfg: BenchConfig, path: str) -> dict[str, Any]:
    """Run in a child process: times, FLOPs and peak RSS of one path."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    optimised, checkpointed = PATHS[path]
    precision = _precision(optimised)
    dev = torch.device(init_from_env(cfg.device))
    model = _build(cfg, optimised, checkpointed).to(dev)
    frames, mask = _inputs(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    horizon = cfg.seq_len - cfg.context_len

    def infer() -> None:
        with autocast(dev, precision):
            model.predict(frames[:, : cfg.context_len], horizon)

    def train() -> None:
        train_step(model, opt, frames, mask, context_len=cfg.context_len, precision=precision)

    # Inference first: memory the allocator keeps after a training step would hide its peak.
    model.eval()
    _reset_peak_rss(dev)
    infer_s = seconds_per_call(infer, cfg.steps, device=dev)
    infer_rss = _peak_rss_mb(dev)
    model.train()
    _reset_peak_rss(dev)
    train_s = seconds_per_call(train, cfg.steps, device=dev)
    train_rss = _peak_rss_mb(dev)
    train_flops, infer_flops = _flops(train), _flops(infer)
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
        out.update(_conv_ceiling(cfg, model, frames, mask, train_s, dev))
    return out


def _conv_calls(cfg: BenchConfig, model, frames, mask) -> Counter:
    """(conv id, input shape, input needs grad) -> calls, over one forward pass."""
    calls: Counter = Counter()

    def hook(mod: nn.Conv2d, args, _out) -> None:
        calls[(id(mod), tuple(args[0].shape), args[0].requires_grad)] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with autocast(frames.device, "bf16-mixed"):
        model(frames, cfg.context_len, mask)
    for h in handles:
        h.remove()
    return calls


def _conv_ceiling(cfg, model, frames, mask, train_s: float, dev: torch.device) -> dict:
    """Time every convolution of a step alone, at its own shape and precision, and sum."""
    convs = {id(m): m for m in model.modules() if isinstance(m, nn.Conv2d)}
    calls = _conv_calls(cfg, model, frames, mask)
    fwd_total = bwd_total = 0.0
    for (mid, shape, needs_grad), n in calls.items():
        conv = convs[mid]
        x = torch.randn(shape, device=dev).to(memory_format=torch.channels_last)
        x.requires_grad_(needs_grad)
        with autocast(dev, "bf16-mixed"):
            g = torch.randn_like(conv(x))

        def fwd(conv=conv, x=x) -> None:
            with torch.no_grad(), autocast(dev, "bf16-mixed"):
                conv(x)

        def fwd_bwd(conv=conv, x=x, g=g) -> None:
            with autocast(dev, "bf16-mixed"):
                y = conv(x)
            y.backward(g)

        fwd_total += n * seconds_per_call(fwd, 3, device=dev)
        bwd_total += n * seconds_per_call(fwd_bwd, 3, device=dev)
    return {
        "conv_ceiling_train_s": bwd_total,
        "conv_ceiling_fwd_s": fwd_total,
        "train_vs_ceiling": bwd_total / train_s,
        "conv_calls": sum(calls.values()),
    }


def measure_path(cfg: dict, path: str, results) -> None:
    try:
        results.put(("ok", _measure(BenchConfig.from_dict(cfg), path)))
    except Exception as e:  # noqa: BLE001 - any failure is reported to the parent, one line
        results.put(("error", f"{type(e).__name__}: {e}"))


def run_in_child(target: Callable, args: tuple, what: str) -> Any:
    """Run target(*args, queue) in a fresh process; its result, or a MimcastError when it
    fails or dies (never a wait for a child that is gone)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, results))
    proc.start()
    try:
        status, value = _wait_for(proc, results, what)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    if status != "ok":
        raise MimcastError(f"bench: the {what} measurement failed: {value}")
    return value


def _wait_for(proc, results, what: str) -> tuple[str, Any]:
    """The child's (status, value); a MimcastError as soon as it is found dead without one."""
    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            if not proc.is_alive():
                raise MimcastError(
                    f"bench: the {what} measurement died (exit code {proc.exitcode})"
                ) from None


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Measure every path, each in a fresh process; returns the numbers and their ratios."""
    results: dict[str, Any] = {}
    for name in PATHS:
        if name == "checkpointed" and not cfg.grad_checkpointing:
            continue
        results[name] = run_in_child(measure_path, (cfg.to_dict(), name), name)
    o, p = results["optimised"], results["plain_fp32"]
    results["ratio_train"] = o["train_seq_s"] / p["train_seq_s"]
    results["ratio_infer"] = o["infer_seq_s"] / p["infer_seq_s"]
    results["config"] = cfg.to_dict()
    results["machine"] = describe(cfg.device)
    return results


def _row(label: str, m: dict[str, Any]) -> str:
    return (
        f"| {label} | {m['train_seq_s']:.2f} | {m['infer_seq_s']:.2f} | {m['train_tflops']:.3f} "
        f"| {m['infer_tflops']:.3f} | {m['train_peak_rss_mb']:.0f} | {m['infer_peak_rss_mb']:.0f} |"
    )


def describe_config(c: dict[str, Any]) -> str:
    m = c["model"]
    return (
        f"{m['name']} ({m['variant']}) {len(m['hidden'])}x{m['hidden'][0]}, filter "
        f"{m['filter_size']}, {m['height']}x{m['width']}x{m['in_channels']} patch "
        f"{m['patch_size']}, layer norm {'on' if m['layer_norm'] else 'off'}, batch "
        f"{c['batch']}, {c['context_len']}->{c['seq_len'] - c['context_len']}"
    )


def format_bench(r: dict[str, Any]) -> str:
    o, p = r["optimised"], r["plain_fp32"]
    rows = [
        describe_config(r["config"]),
        f"machine: {one_line(r['machine'])}",
        "",
        "| path | train seq/s | infer seq/s | train TFLOP/s | infer TFLOP/s "
        "| train peak RSS MB | infer peak RSS MB |",
        "|---|---|---|---|---|---|---|",
        _row("optimised (bf16-mixed, channels_last)", o),
    ]
    if "checkpointed" in r:
        rows.append(_row("optimised + activation checkpointing", r["checkpointed"]))
    return "\n".join(
        rows
        + [
            _row("plain eager fp32", p),
            f"| ratio optimised / plain | {r['ratio_train']:.2f}x | {r['ratio_infer']:.2f}x "
            "| | | | |",
            "",
            f"Convolution-bound ceiling of a training step: {o['conv_ceiling_train_s']:.3f} s for "
            f"{o['conv_calls']} convolution calls timed alone; the step takes "
            f"{o['train_step_s']:.3f} s, i.e. {100 * o['train_vs_ceiling']:.0f}% of the ceiling.",
        ]
    )
