"""Evaluate a run folder: per-frame metrics, curves, strips, GIFs and report.md.

Writes into <run>/eval/<split>/ only. Under torchrun the split is sharded over the processes,
every sequence is counted exactly once and the metric sums are all-reduced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from mimcast import viz
from mimcast.errors import ConfigError
from mimcast.metrics import FrameMetrics, format_table, write_metrics
from mimcast.training import distributed as dist_utils
from mimcast.training.checkpoint import load_checkpoint, load_model
from mimcast.training.runs import datasets, preds_after_context, read_run_config
from mimcast.training.trainer import autocast

CURVE_METRICS = ("mse", "ssim")


def evaluate_run(
    run_dir: Path,
    split: str | None = None,
    which: str = "best",
    data_name: str | None = None,
    data_root: str | None = None,
    compare: tuple[Path, ...] = (),
    device: str = "cpu",
    log=print,
) -> dict[str, Any]:
    """Evaluate the `which` checkpoint of run_dir on a split; returns FrameMetrics' result."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if data_name is not None:
        cfg.data.name = data_name
    if data_root is not None:
        cfg.data.root = data_root
    split = split or cfg.eval.split
    if split not in ("train", "val", "test"):
        raise ConfigError(f"--split must be train, val or test, got {split!r}")
    device = dist_utils.init_from_env(device)
    dev = torch.device(device)
    data = datasets(cfg, (split,))[split]
    model = load_model(run_dir, which, device)
    step = load_checkpoint(run_dir, which).step
    trained = (model.config.in_channels, model.config.height, model.config.width)
    if tuple(data.frame_shape) != trained:
        raise ConfigError(
            f"data set {cfg.data.name} has frames {tuple(data.frame_shape)}, the model in "
            f"{run_dir} was trained on {trained}"
        )
    context_len = int(data.context_len)
    n = len(data) if cfg.eval.num_sequences <= 0 else min(cfg.eval.num_sequences, len(data))
    shard = list(range(dist_utils.rank(), n, dist_utils.world_size()))
    loader = DataLoader(Subset(data, shard), batch_size=cfg.eval.batch_size)
    metrics = FrameMetrics(
        data_range=tuple(data.value_range),
        to_units=_units_fn(data),
        thresholds=cfg.eval.thresholds,
        n_frames=int(data.seq_len) - context_len,
    )
    shown: list[tuple[torch.Tensor, torch.Tensor]] = []
    with torch.no_grad():
        for frames in loader:
            frames = frames.to(dev)
            with autocast(dev, cfg.train.precision):
                preds = model(frames, context_len)
            preds = preds_after_context(preds.float(), context_len)
            metrics.update(preds, frames[:, context_len:])
            if len(shown) < cfg.eval.show:
                for f, p in zip(frames.cpu(), preds.cpu()):
                    shown.append((f, p))
    metrics.reduce(dist_utils.all_reduce_sum)
    result = metrics.compute()
    result["checkpoint"] = {"which": which, "step": step}
    if not dist_utils.is_main():
        return result
    out = run_dir / "eval" / split
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(result, out / "metrics.json", out / "metrics.csv")
    table = format_table(result, [k for k in _table_metrics(result)])
    (out / "table.txt").write_text(table + "\n")
    log(
        f"{cfg.model.name} on {cfg.data.name}/{split}: {result['n_sequences']} sequences, "
        f"checkpoint {which} (step {step})"
    )
    log(table)
    pictures = _pictures(
        out, run_dir, split, result, shown[: cfg.eval.show], context_len, data, compare
    )
    write_report(run_dir, split, result, pictures, cfg)
    return result


def _units_fn(data):
    to_units = getattr(data, "to_units", None)
    if to_units is None:
        return None
    return lambda x: to_units(x)


def _table_metrics(result: dict) -> list[str]:
    keep = ["mse", "mae", "mse_pixel", "ssim", "ssim_legacy", "psnr", "mse_units", "mae_units"]
    names = [k for k in keep if k in result["per_frame"]]
    names += [k for k in result["per_frame"] if "@" in k]
    return names


def _pictures(
    out: Path,
    run_dir: Path,
    split: str,
    result: dict,
    shown,
    context_len: int,
    data,
    compare: tuple[Path, ...],
) -> list[Path]:
    pics = []
    curves = {run_dir.name: result["per_frame"]}
    for other in compare:
        path = Path(other) / "eval" / split / "metrics.json"
        if not path.is_file():
            raise ConfigError(f"--compare {other}: no {path} (evaluate that run first)")
        curves[Path(other).name] = json.loads(path.read_text())["per_frame"]
    for metric in CURVE_METRICS:
        pics.append(viz.plot_framewise(curves, metric, out / f"framewise_{metric}.png"))
    vrange = tuple(data.value_range)
    taxibj = getattr(data, "name", "") == "taxibj" or data.frame_shape[0] == 2
    for i, (frames, preds) in enumerate(shown):
        ctx, true = frames[:context_len], frames[context_len:]
        every = max(1, len(true) // 10)
        pics.append(
            viz.save_strip(
                ctx, true, preds.clamp(*vrange), out / f"strip_{i}.png", every=every, vrange=vrange
            )
        )
        viz.save_comparison_gif(
            true, preds.clamp(*vrange), out / f"sequence_{i}.gif", vrange=vrange, scale=2
        )
        if taxibj:
            pics.append(viz.save_diff_maps(true, preds, out / f"diff_{i}.png"))
    return pics


def write_report(run_dir: Path, split: str, result: dict, pictures: list[Path], cfg) -> Path:
    """report.md in the run folder: the metrics table, the curves and the prediction pictures."""
    names = _table_metrics(result)
    lines = [
        f"# {cfg.model.name} on {cfg.data.name} ({split})",
        "",
        f"Checkpoint: {result['checkpoint']['which']} (step {result['checkpoint']['step']}); "
        f"{result['n_sequences']} sequences, {result['n_frames']} predicted frames each.",
        "MSE/MAE are summed over the pixels of a frame and averaged over sequences (the papers' "
        "convention); *_pixel are per pixel; SSIM uses data_range 1 (ssim_legacy: the reference "
        "code's 7x7 uniform window with data_range 2, for published tables only).",
        "",
        "| frame | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for i in range(result["n_frames"]):
        lines.append(
            f"| {i + 1} | " + " | ".join(f"{result['per_frame'][k][i]:.4g}" for k in names) + " |"
        )
    lines.append("| **mean** | " + " | ".join(f"**{result['mean'][k]:.4g}**" for k in names) + " |")
    lines.append("")
    for p in pictures:
        lines.append(f"![{p.stem}]({p.relative_to(run_dir).as_posix()})")
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
