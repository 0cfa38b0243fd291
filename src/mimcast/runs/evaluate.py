"""Evaluate a run folder: per-frame metrics, curves, strips, GIFs and report.md.

Writes into <run>/eval/<split>/ only (and report.md). Every output is written into a staging
folder first and swapped into place at the end, so a failure (a full disk) leaves the previous
evaluation as it was. Under torchrun the split is sharded over the processes, every sequence is
counted exactly once and the metric sums are all-reduced.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from mimcast.data import DataSpec, SequenceDataset
from mimcast.errors import ConfigError, DataError
from mimcast.evaluation import viz
from mimcast.evaluation.baselines import select_baselines
from mimcast.evaluation.metrics import FrameMetrics, format_table, write_metrics
from mimcast.evaluation.skill import BaselineMetrics, add_baselines, format_skill_table
from mimcast.fs import remove_owned, storage_error
from mimcast.models import Forecaster
from mimcast.runs.datasets import build_splits, on_other_data
from mimcast.runs.lock import RunLock
from mimcast.runs.predict import load_run_model
from mimcast.runs.report import run_report, table_metrics
from mimcast.runs.rundir import EvalFiles, RunDir
from mimcast.training import distributed as dist_utils
from mimcast.training.config import RunConfig
from mimcast.training.precision import autocast
from mimcast.training.validation import shard

CURVE_METRICS = ("mse", "ssim")
Shown = list[tuple[torch.Tensor, torch.Tensor]]  # (frames, predictions) of a few sequences


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str | None = None,
    which: str = "best",
    data: str | None = None,
    data_root: str | None = None,
    compare: tuple[Path, ...] = (),
    device: str = "auto",
    baselines: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate the `which` checkpoint of run_dir on a split beside the baselines (`baselines`,
    default the run's eval.baselines); returns FrameMetrics' result with theirs added."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    if baselines is not None:
        select_baselines(baselines, "--baselines")
        cfg = cfg.replace(eval={"baselines": baselines})
    select_baselines(cfg.eval.baselines)  # flow without OpenCV: refused before any work
    other_data = data is not None or data_root is not None
    if other_data:
        cfg = on_other_data(cfg, data, data_root)
    split = split or cfg.eval.split
    if split not in ("train", "val", "test"):
        raise ConfigError(f"--split must be train, val or test, got {split!r}")
    curves = compare_curves(run, compare, split)  # checked before anything is computed
    _check_eval_folder(run.eval_dir(split))
    device = dist_utils.init_from_env(device)
    ds = build_splits(cfg, (split,))[split]
    if other_data:
        _use_run_units(ds, run.read_data_spec(), run)
    model, step = load_run_model(run, which, device)
    _check_fits(model, ds, run)
    result, shown = measure(model, ds, cfg=cfg, device=torch.device(device))
    result["checkpoint"] = {"which": which, "step": step}
    if dist_utils.is_main():
        table = format_table(result, table_metrics(result))
        log(
            f"{cfg.model.name} on {cfg.data.name}/{split}: {result['n_sequences']} sequences, "
            f"checkpoint {which} (step {step})"
        )
        log(table)
        if "baselines" in result:
            log("\n" + format_skill_table(result))
        pictures = _publish(run, split, result=result, shown=shown, data=ds, curves=curves)
        run.write_report(run_report(run, split=split, result=result, pictures=pictures, cfg=cfg))
    return result


def compare_curves(run: RunDir, compare: tuple[Path, ...], split: str) -> dict[str, dict]:
    """Per-frame metrics of the runs to draw beside this one (each must be evaluated)."""
    curves = {}
    for other in compare:
        path = RunDir(other).eval_dir(split).metrics_json
        try:
            curves[Path(other).name] = json.loads(path.read_text())["per_frame"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"--compare {other}: no readable {path} (evaluate it first)") from e
    return curves


def _check_eval_folder(files: EvalFiles) -> None:
    """The folder about to be replaced holds only mimcast's files (nothing of the user's)."""
    folder = files.folder
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ConfigError(f"{folder} is not a folder mimcast wrote; move it away first")
    if folder.is_dir():
        foreign = [p.name for p in folder.iterdir() if not EvalFiles.is_owned(Path(p.name))]
        if foreign:
            raise ConfigError(
                f"{folder} holds files mimcast did not write ({', '.join(sorted(foreign)[:3])}"
                "): move them away first"
            )


def _use_run_units(ds: SequenceDataset, spec: DataSpec, run: RunDir) -> None:
    """Other data than the run's is fed to its model in the run's units map (data.json), not
    one of its own; data whose range differs many times from the run's is refused as being
    in other units (0-1 floats for a 0-255 run)."""
    (lo, hi), (r_lo, r_hi) = DataSpec.from_dataset(ds).data_range(), spec.data_range()
    ratio = (hi - lo) / max(r_hi - r_lo, 1e-12)
    if not 0.2 <= ratio <= 5:
        raise DataError(
            f"data set {ds.name} spans [{lo:.4g}, {hi:.4g}] while the data of {run} was "
            f"{spec.units} in [{r_lo:.4g}, {r_hi:.4g}]: other units? convert the file first"
        )
    ds.normalizer = spec.affine()
    ds.value_range = spec.value_range


def _check_fits(model: Forecaster, ds: SequenceDataset, run: RunDir) -> None:
    cfg = model.config
    trained = (cfg.in_channels, cfg.height, cfg.width)
    if tuple(ds.frame_shape) != trained:
        raise ConfigError(
            f"data set {ds.name} has frames {tuple(ds.frame_shape)}, the model in {run} was "
            f"trained on {trained}"
        )
    model.check_given_inputs(ds.given_inputs, f"data set {ds.name}")


def measure(
    model: Forecaster, ds: SequenceDataset, *, cfg: RunConfig, device: torch.device
) -> tuple[dict[str, Any], Shown]:
    """Metrics of free-running forecasts over (the first eval.num_sequences of) a split, beside
    those of the baselines eval.baselines chooses on the same sequences, and the first
    eval.show sequences with their predictions."""
    baselines, left_out = select_baselines(cfg.eval.baselines)
    context_len = int(ds.context_len)
    n = len(ds) if cfg.eval.num_sequences <= 0 else min(cfg.eval.num_sequences, len(ds))
    loader = DataLoader(Subset(ds, shard(n)), batch_size=cfg.eval.batch_size)

    def frame_metrics() -> FrameMetrics:
        return FrameMetrics(
            data_range=tuple(ds.value_range),
            to_units=ds.to_units,
            thresholds=cfg.eval.thresholds,
            n_frames=int(ds.seq_len) - context_len,
        )

    metrics = frame_metrics()
    trivial = BaselineMetrics(baselines, frame_metrics, tuple(ds.value_range))
    shown: Shown = []
    with torch.no_grad():
        for frames in loader:
            frames = frames.to(device)
            with autocast(device, cfg.train.precision):
                preds = model(frames, context_len)
            # the channels forecast and scored: not the given inputs, which come from the data
            k = ds.forecast_channels
            preds = Forecaster.forecast_part(preds.float(), context_len)[:, :, :k]
            frames = frames[:, :, :k]
            truth = metrics.prepare(frames[:, context_len:])  # shared by model and baselines
            metrics.update(preds, truth)
            trivial.update(frames[:, :context_len], truth)
            shown += list(zip(frames.cpu(), preds.cpu()))[: cfg.eval.show - len(shown)]
    metrics.reduce(dist_utils.all_reduce_sum)
    trivial.reduce(dist_utils.all_reduce_sum)
    return add_baselines(metrics.compute(), trivial.compute(), left_out), shown


def _publish(
    run: RunDir,
    split: str,
    *,
    result: dict,
    shown: Shown,
    data: SequenceDataset,
    curves: dict[str, dict],
) -> list[Path]:
    """Write every output into a staging folder, then swap it into eval/<split>/."""
    target = run.eval_dir(split).folder
    stage = EvalFiles(target.with_name(f".{split}.tmp-{os.getpid()}"))
    try:
        stage.folder.mkdir(parents=True, exist_ok=True)
        trivial = {b["label"]: b["per_frame"] for b in result.get("baselines", {}).values()}
        named = {run.path.name: result["per_frame"], **trivial, **curves}
        pictures = _write_outputs(stage, result=result, shown=shown, data=data, curves=named)
        with RunLock(run.eval_lock, "evaluate"):
            old = target.with_name(f".{split}.old-{os.getpid()}")
            if target.exists():
                os.replace(target, old)
            os.replace(stage.folder, target)
            remove_owned(old, EvalFiles.is_owned)
    except OSError as e:
        raise storage_error(getattr(e, "filename", None) or stage.folder, e) from e
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(stage.folder)  # what a failure left behind
    return [target / p.relative_to(stage.folder) for p in pictures]


def _skill_curve(result: dict, path: Path) -> Path:
    """Skill per lead time against each baseline, with the line where the model is no better."""
    curves = {b["label"]: {"skill": b["skill"]} for b in result["baselines"].values()}
    title = "skill = 1 - MSE model / MSE baseline (above 0: the model is better)"
    return viz.plot_framewise(curves, "skill", path, title=title, reference=0.0)


def _write_outputs(
    files: EvalFiles,
    *,
    result: dict,
    shown: Shown,
    data: SequenceDataset,
    curves: dict[str, dict],
) -> list[Path]:
    """metrics, table and pictures into `files`; `curves` holds every run drawn (this one
    first)."""
    write_metrics(result, files.metrics_json, files.metrics_csv)
    tables = [format_table(result, table_metrics(result))]
    pics = [viz.plot_framewise(curves, m, files.curve(m)) for m in CURVE_METRICS]
    if "baselines" in result:
        tables.append(format_skill_table(result))
        pics.append(_skill_curve(result, files.curve("skill")))
    files.table.write_text("\n\n".join(tables) + "\n")
    vrange = tuple(data.value_range)
    context_len = int(data.context_len)
    for i, (frames, preds) in enumerate(shown):
        ctx, true, pred = frames[:context_len], frames[context_len:], preds.clamp(*vrange)
        every = max(1, len(true) // 10)
        pics.append(viz.save_strip(ctx, true, pred, files.strip(i), every=every, vrange=vrange))
        viz.save_comparison_gif(true, pred, files.gif(i), vrange=vrange, scale=2)
        if data.forecast_channels == 2:  # two-channel flows (TaxiBJ): difference maps
            pics.append(viz.save_diff_maps(true, preds, files.diff(i)))
    return pics
