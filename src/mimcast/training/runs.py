"""A training run end to end: run folder, datasets, model, trainer, validation.

Run folder layout (everything mimcast writes for a run lives here):
    config.yaml        resolved RunConfig (marks the folder as a mimcast run)
    model.json         the ModelConfig (with the data's frame shape): rebuilds the model alone
    log.csv, tb/       training log (TensorBoard when installed)
    checkpoints/       step-NNNNNNN/ folders and last.json / best.json pointers
    eval/<split>/      metrics.json, metrics.csv, plots, strips, GIFs (mimcast evaluate)
    report.md          metrics table and pictures
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader, Dataset, Subset

from mimcast.data import build_dataset
from mimcast.errors import ConfigError, MimcastError
from mimcast.models import ModelConfig, build_model
from mimcast.models.rollout import Forecaster
from mimcast.prediction import save_data_spec
from mimcast.training import distributed as dist_utils
from mimcast.training.config import RunConfig, config_from_dict
from mimcast.training.trainer import Trainer, TrainState, autocast

# What mimcast itself writes into a run folder; --overwrite removes these and nothing else.
ARTIFACTS = (
    "config.yaml",
    "model.json",
    "data.json",
    "log.csv",
    "report.md",
    "checkpoints",
    "eval",
    "tb",
)


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool, clear: bool = True) -> None:
    """Check the run folder can be used; never delete the folder or files mimcast did not write.

    With overwrite, the old run's artifacts are removed (clear=False: only checked; train_run
    removes them once the config, data and model are known to be good).
    """
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} exists and is not a folder")
    is_run = (run_dir / "config.yaml").is_file()
    has_files = run_dir.is_dir() and any(run_dir.iterdir())
    if resume:
        if not is_run:
            raise ConfigError(
                f"cannot resume: {run_dir} is not a mimcast run folder (no config.yaml)"
            )
        return
    if not has_files:
        return
    if not is_run:
        raise ConfigError(
            f"run folder {run_dir} is not empty and not a mimcast run: choose another --run-dir"
        )
    if not overwrite:
        raise ConfigError(
            f"run folder {run_dir} already holds a run: pass --resume to continue it or "
            "--overwrite to start it again"
        )
    if clear:
        clear_run_dir(run_dir)


def clear_run_dir(run_dir: Path) -> None:
    """Remove what mimcast wrote in a run folder (ARTIFACTS), nothing else."""
    for name in ARTIFACTS:
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def read_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a mimcast run folder (no config.yaml)")
    return config_from_dict(yaml.safe_load(path.read_text()))


def datasets(cfg: RunConfig, splits: tuple[str, ...]) -> dict[str, Dataset]:
    d = cfg.data
    out = {}
    for split in splits:
        options = dict(d.options)
        if split != "train":
            options.update(d.eval_options)
        options.setdefault("patch_size", cfg.model.patch_size)  # names the file if it fails
        try:
            out[split] = build_dataset(d.name, split, root=d.root, **options)
        except MimcastError:
            raise
        except (TypeError, ValueError) as e:  # an option of the wrong type (data.options)
            raise ConfigError(f"data set {d.name!r}, {split} split: bad data.options: {e}") from e
    return out


def model_config(cfg: RunConfig, frame_shape: tuple[int, int, int]) -> ModelConfig:
    m = cfg.model
    c, h, w = frame_shape
    return ModelConfig(
        name=m.name,
        in_channels=c,
        height=h,
        width=w,
        patch_size=m.patch_size,
        hidden=tuple(m.hidden),
        filter_size=m.filter_size,
        layer_norm=m.layer_norm,
        variant=m.variant,
        mim_n=m.mim_n,
        mim_s=m.mim_s,
    )


def frame_mse(
    model: Forecaster,
    data: Dataset,
    context_len: int,
    batch_size: int,
    device: torch.device,
    precision: str,
    limit: int = 0,
) -> float:
    """Mean per-frame MSE (summed over a frame's pixels, as the papers report), free-running.

    Every sequence is counted once; under torchrun each rank takes a shard and the sums are
    reduced, so the result equals a single-process evaluation.
    """
    n = len(data) if limit <= 0 else min(limit, len(data))
    shard = list(range(dist_utils.rank(), n, dist_utils.world_size()))
    loader = DataLoader(Subset(data, shard), batch_size=batch_size)
    lo, hi = getattr(data, "value_range", (0.0, 1.0))
    total = torch.zeros(2, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        for frames in loader:
            frames = frames.to(device)
            with autocast(device, precision):
                preds = model(frames, context_len)
            preds = preds_after_context(preds, context_len)  # predictions of frames ctx..T-1
            err = (preds.float().clamp(lo, hi) - frames[:, context_len:].float()) ** 2
            per_frame = err.sum(dim=(2, 3, 4))  # (B, T_out)
            total += torch.tensor([per_frame.sum().item(), per_frame.numel()], dtype=torch.float64)
    dist_utils.all_reduce_sum(total)
    return (total[0] / total[1]).item() if total[1] > 0 else math.nan


def preds_after_context(preds: torch.Tensor, context_len: int) -> torch.Tensor:
    """forward() predicts frames 1..T-1; the forecast proper is frames context_len..T-1."""
    return preds[:, context_len - 1 :]


def _atomic_write(path: Path, text: str) -> None:
    """Write under a temporary name, then rename: a kill leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _quiet(*_args, **_kwargs) -> None:
    pass


def train_run(
    cfg: RunConfig, run_dir: Path, resume: bool = False, overwrite: bool = False, log=print
) -> TrainState:
    """Train a model as configured, writing everything into run_dir."""
    run_dir = Path(run_dir)
    device_name = dist_utils.init_from_env(cfg.train.device)
    if device_name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA device is available")
    main = dist_utils.is_main()
    if not main:  # only rank 0 reports
        log = _quiet
    if main:
        prepare_run_dir(run_dir, resume, overwrite, clear=False)  # removes nothing yet
    dist_utils.barrier()
    if resume:
        saved = read_run_config(run_dir)
        if saved.model != cfg.model or saved.data.name != cfg.data.name:
            raise ConfigError(
                f"--resume: the run in {run_dir} was made with another model or data set; "
                "resume without changing them"
            )
    data = datasets(cfg, ("train", "val"))
    train_set, val_set = data["train"], data["val"]
    context_len = int(train_set.context_len)
    mcfg = model_config(cfg, tuple(train_set.frame_shape))
    torch.manual_seed(cfg.train.seed)
    model = build_model(mcfg)
    model.checkpoint_steps = cfg.train.checkpoint_steps
    device = torch.device(device_name)
    val_context = int(getattr(val_set, "context_len", context_len))

    def validate(m: Forecaster) -> float:
        return frame_mse(
            m,
            val_set,
            val_context,
            cfg.eval.batch_size,
            device,
            cfg.train.precision,
            cfg.train.val_sequences,
        )

    t = dataclasses.replace(cfg.train, device=device_name)  # this process's device (LOCAL_RANK)
    trainer = Trainer(
        model, train_set, t, run_dir, context_len, validate, log, num_workers=cfg.data.num_workers
    )
    if resume:  # the checkpoint is read and verified before anything is written
        trainer.resume()
        log(f"resuming {run_dir} at step {trainer.state.step}")
    if main:  # the inputs are good: only now is anything removed or written
        if overwrite and (run_dir / "config.yaml").is_file():
            clear_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        _atomic_write(run_dir / "model.json", json.dumps(mcfg.to_dict(), indent=1))
        save_data_spec(run_dir, val_set)
    dist_utils.barrier()
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"training {mcfg.name} ({mcfg.variant}, {n_params / 1e6:.2f}M parameters) on "
        f"{cfg.data.name} {tuple(train_set.frame_shape)}, {len(train_set)} train sequences, "
        f"{t.steps} steps of {t.batch_size}, precision {t.precision}, device {device}"
    )
    started = time.perf_counter()
    state = trainer.fit()
    log(
        f"done: step {state.step}, best validation MSE/frame {state.best_val:.2f} at step "
        f"{state.best_step} ({time.perf_counter() - started:.0f} s)"
    )
    return state
