"""A training run end to end: validate everything, then lock, write and train in the run folder.

Order matters for the user's files: the flags, the config, the data sets, the model (built)
and, with --resume, the checkpoint (read and verified) are all checked before anything in the
run folder is touched. Only then is the folder locked; --overwrite moves the old run aside
(kept until the new run finishes), and the new run's files are written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from mimcast.data import DataSpec
from mimcast.errors import ConfigError
from mimcast.models import build_model
from mimcast.runs.datasets import build_splits
from mimcast.runs.rundir import RunDir
from mimcast.training import distributed as dist_utils
from mimcast.training.batches import check_batch_split
from mimcast.training.config import RunConfig, data_run_defaults
from mimcast.training.trainer import Trainer, TrainState
from mimcast.training.validation import frame_mse


def _quiet(*_args: object, **_kwargs: object) -> None:
    pass


def _check_resumable(run: RunDir, cfg: RunConfig) -> None:
    saved = run.read_config()
    if saved.model != cfg.model or saved.data.name != cfg.data.name:
        raise ConfigError(
            f"--resume: the run in {run} was made with another model or data set; "
            "resume without changing them"
        )


def _trainer(cfg: RunConfig, run: RunDir, device: str, log: Callable) -> tuple[Trainer, DataSpec]:
    """Data sets, model and trainer of a run (everything that can fail on bad input), and the
    spec of the data it trains on."""
    data = build_splits(cfg, ("train", "val"))
    train_set, val_set = data["train"], data["val"]
    mcfg = cfg.model.with_frames(train_set.frame_shape)
    torch.manual_seed(cfg.train.seed)
    model = build_model(mcfg).set_grad_checkpointing(cfg.train.grad_checkpointing)
    model.check_given_inputs(train_set.given_inputs, f"data set {cfg.data.name}")
    dev = torch.device(device)

    def validate(m: torch.nn.Module) -> float:
        return frame_mse(
            m,
            val_set,
            batch_size=cfg.eval.batch_size,
            device=dev,
            precision=cfg.train.precision,
            limit=cfg.train.val_sequences,
        )

    trainer = Trainer(
        model,
        train_set=train_set,
        cfg=replace(cfg.train, device=device),  # this process's device (LOCAL_RANK)
        outputs=run.trainer_outputs(),
        context_len=int(train_set.context_len),
        validate=validate,
        log=log,
        num_workers=cfg.data.num_workers,
    )
    return trainer, DataSpec.from_dataset(val_set)


def _write_run_files(
    run: RunDir, cfg: RunConfig, trainer: Trainer, spec: DataSpec, *, resumed: bool
) -> None:
    """The marker, config, model and data spec; on a resume only what changed."""
    run.create()
    if not (resumed and run.read_config() == cfg):
        run.write_config(cfg)
    if not (resumed and run.read_model_config() == trainer.raw_model.config):
        run.write_model_config(trainer.raw_model.config)
    if not (resumed and run.read_data_spec() == spec):
        run.write_data_spec(spec)


def train_run(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> TrainState:
    """Train a model as configured, writing everything into run_dir."""
    run = RunDir(run_dir)
    device = dist_utils.init_from_env(cfg.train.device)
    check_batch_split(cfg.train.batch_size, dist_utils.world_size())  # before any file is made
    main = dist_utils.is_main()
    log = log if main else _quiet  # only rank 0 reports
    if main:
        run.check_usable(resume=resume, overwrite=overwrite)  # writes nothing
    if resume:
        _check_resumable(run, cfg)
    trainer, spec = _trainer(cfg, run, device, log)
    if resume:  # the checkpoint is read and verified before anything is written
        trainer.resume()
        if trainer.state.step > cfg.train.steps:
            raise ConfigError(
                f"--resume: the run in {run} is at step {trainer.state.step}, beyond "
                f"train.steps {cfg.train.steps}: give more steps to continue it"
            )
        log(f"resuming {run} at step {trainer.state.step}")
    with run.lock("train") if main else contextlib.nullcontext() as lock:
        if main:
            run.check_usable(resume=resume, overwrite=overwrite)  # again, now that we hold it
            if lock.took_over:
                log(f"took over the stale lock of PID {lock.took_over['pid']} (not running)")
            if overwrite and run.retire() is not None:
                log(f"the old run was moved to {run.path / run.PREVIOUS} until this one finishes")
            _write_run_files(run, cfg, trainer, spec, resumed=resume)
        dist_utils.barrier()
        state = _fit(trainer, cfg, spec, log)
        if main and state.step >= cfg.train.steps:
            _drop_previous(run, log)
    return state


def _fit(
    trainer: Trainer, cfg: RunConfig, spec: DataSpec, log: Callable[[str], None]
) -> TrainState:
    mcfg, t = trainer.raw_model.config, cfg.train
    n_params = sum(p.numel() for p in trainer.raw_model.parameters())
    log(
        f"training {mcfg.name} ({mcfg.variant}, {n_params / 1e6:.2f}M parameters) on "
        f"{cfg.data.name} {spec.frame_shape}, {len(trainer.train_set)} train "
        f"sequences, {t.steps} steps of {t.batch_size}, precision {t.precision}, device "
        f"{trainer.device}"
    )
    kind_defaults = _dotted(data_run_defaults(cfg.data.name))
    if kind_defaults:
        log(
            f"{cfg.data.name} data trains with its own defaults (a config file or --set "
            f"overrides them): {', '.join(f'{k}={v}' for k, v in kind_defaults.items())}; "
            f"split {getattr(trainer.train_set, 'split_rule', '') or 'of the data set'}"
        )
    _note_few_windows(len(trainer.train_set), log)
    started = time.perf_counter()
    state = trainer.fit()
    took = f"({time.perf_counter() - started:.0f} s)"
    if state.best_step >= 0:
        log(
            f"done: step {state.step}, best validation MSE/frame {state.best_val:.2f} at step "
            f"{state.best_step} {took}"
        )
    else:
        log(f"done: step {state.step}, no validation yet {took}")
    return state


# Below this many training windows a learnt model may not beat persistence, and a user should
# hear so before the minutes are spent. Measured: the 13 (microscopy tiles) lost, tree.avi
# tied with 5 and 9 windows as a residual model and won with 9 as a plain one; 91 (bikes.mp4)
# and 309 (vtest.avi) won. The threshold is a caution, not a measured edge.
FEW_WINDOWS = 50


def _note_few_windows(n_windows: int, log: Callable[[str], None]) -> None:
    if n_windows < FEW_WINDOWS:
        log(
            f"note: only {n_windows} training windows: with so few a learnt model may not beat "
            "repeating the last frame; the baselines at the end will say (longer footage, or a "
            "shorter data.options.seq_len, gives more windows)"
        )


def _dotted(sections: dict, prefix: str = "") -> dict[str, object]:
    """{"model": {"residual": True}} -> {"model.residual": True}."""
    out: dict[str, object] = {}
    for key, value in sections.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _drop_previous(run: RunDir, log: Callable[[str], None]) -> None:
    previous = run.path / run.PREVIOUS
    if previous.exists():
        kept = run.drop_previous()
        if kept:
            log(f"kept {len(kept)} file(s) mimcast did not write in {previous}")
