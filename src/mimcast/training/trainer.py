"""The training loop: fetch a batch, forward, backward, step. Everything else hangs off it.

It knows the Forecaster protocol (frames, context_len, masks), not models. After each step
small hooks log the row, validate, save a checkpoint and stop on a signal. Determinism: the
batch of step s and its scheduled-sampling masks are functions of (seed, s) (see batches.py),
so a resumed run sees exactly the data and masks of an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from mimcast.errors import DataError, MimcastError
from mimcast.models.weights import load_weights
from mimcast.training import distributed as dist_utils
from mimcast.training.batches import StepSampler
from mimcast.training.checkpoint import load_checkpoint, save_checkpoint
from mimcast.training.config import TrainSection
from mimcast.training.logs import TrainingLog, trim_log
from mimcast.training.losses import frame_loss
from mimcast.training.precision import autocast, grad_scaler
from mimcast.training.schedules import WeightAverage, learning_rate
from mimcast.training.stopping import StopSignals


class TrainingError(MimcastError):
    """Training cannot go on (a NaN loss, say); the message names the step."""


@dataclass(frozen=True)
class TrainerOutputs:
    """Where a trainer writes: the checkpoint folder, log.csv and the TensorBoard folder."""

    checkpoints: Path
    log_csv: Path
    tensorboard: Path | None = None


@dataclass
class TrainState:
    step: int = 0  # number of optimizer steps done
    best_val: float = math.inf
    best_step: int = -1
    skipped: int = 0
    stopped_by: str | None = None  # the signal that stopped the run early (SIGINT, SIGTERM)


class Trainer:
    """Fits a Forecaster on a dataset of (T, C, H, W) sequences: Adam on train.loss."""

    def __init__(
        self,
        model: nn.Module,
        *,
        train_set: Dataset,
        cfg: TrainSection,
        outputs: TrainerOutputs,
        context_len: int,
        validate: Callable[[nn.Module], float] | None = None,
        log: Callable[[str], None] = print,
        num_workers: int = 0,
    ) -> None:
        self.cfg, self.outputs, self.log = cfg, outputs, log
        self.device = torch.device(cfg.device)
        self.raw_model = model.to(self.device)
        if cfg.channels_last:
            self.raw_model = self.raw_model.to(memory_format=torch.channels_last)
        self.model = dist_utils.wrap(self.raw_model, self.device)
        self.train_set, self.context_len, self.num_workers = train_set, context_len, num_workers
        self.validate = validate
        self.optimizer = torch.optim.Adam(self.raw_model.parameters(), lr=cfg.lr)
        self.scaler = grad_scaler(self.device, cfg.precision)
        # the moving average of the weights: what is validated, checkpointed as the model and
        # used for predictions when train.ema > 0
        self.ema = WeightAverage(self.raw_model, cfg.ema) if cfg.ema > 0 else None
        if cfg.compile:
            self.raw_model.set_compile(True)
        self.state = TrainState()

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and used for predictions."""
        return self.ema.model if self.ema is not None else self.raw_model

    # ---------------------------------------------------------------- checkpoints
    def save(self, best: bool = False) -> None:
        if not dist_utils.is_main():
            return
        s = self.state
        extra = {
            "best_val": s.best_val if math.isfinite(s.best_val) else None,
            "best_step": s.best_step,
            "skipped": s.skipped,
            "ema_updates": self.ema.updates if self.ema is not None else None,
        }
        save_checkpoint(
            self.outputs.checkpoints,
            step=s.step,
            model=self.eval_model,
            optimizer=self.optimizer,
            extra=extra,
            pointers=("last", "best") if best else ("last",),
            raw=self.raw_model if self.ema is not None else None,
        )

    def resume(self) -> None:
        """Load the last checkpoint: weights, optimizer, counters and the torch RNG state."""
        ckpt = load_checkpoint(self.outputs.checkpoints, "last")
        if ckpt.model_config != self.raw_model.config:
            raise TrainingError(
                f"the checkpoint {ckpt.path} is of another model ({ckpt.model_config.name}, "
                f"hidden {list(ckpt.model_config.hidden)}): resume with the run's own config"
            )
        self._load_weights(ckpt)
        if ckpt.optimizer is not None:
            self.optimizer.load_state_dict(ckpt.optimizer)
        best = ckpt.extra.get("best_val")
        self.state = TrainState(
            step=ckpt.step,
            best_val=math.inf if best is None else best,
            best_step=ckpt.extra.get("best_step", -1),
            skipped=ckpt.extra.get("skipped", 0),
        )
        if ckpt.rng is not None:
            torch.set_rng_state(ckpt.rng)
        if dist_utils.is_main():
            trim_log(self.outputs.log_csv, ckpt.step)

    def _load_weights(self, ckpt) -> None:
        if (ckpt.raw is not None) != (self.ema is not None):
            raise TrainingError(
                f"the checkpoint {ckpt.path} was saved with{'out' if ckpt.raw is None else ''} a "
                "moving average of the weights (train.ema): resume with the run's own config"
            )
        load_weights(self.raw_model, ckpt.raw or ckpt.model, str(ckpt.path))
        if self.ema is not None:
            load_weights(self.ema.model, ckpt.model, str(ckpt.path))
            self.ema.updates = int(ckpt.extra.get("ema_updates") or 0)

    def _set_lr(self) -> None:
        c = self.cfg
        lr = learning_rate(
            self.state.step,
            lr=c.lr,
            schedule=c.lr_schedule,
            steps=c.steps,
            warmup=c.warmup_steps,
            lr_min=c.lr_min,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # ---------------------------------------------------------------- one step
    def _masks(self, batch: int, seq_len: int) -> tuple[Tensor | None, Tensor | None]:
        """This rank's slice of the global batch's masks (drawn for the global batch)."""
        mask, ctx = self.cfg.sampling.masks(
            self.state.step,
            batch=self.cfg.batch_size,
            seq_len=seq_len,
            context_len=self.context_len,
            seed=self.cfg.seed,
        )
        r = dist_utils.rank()

        def pick(m: Tensor | None) -> Tensor | None:
            return None if m is None else m[r * batch : (r + 1) * batch].to(self.device)

        return pick(mask), pick(ctx)

    def train_step(self, frames: Tensor) -> dict[str, float] | None:
        """One optimizer step on a (B, T, C, H, W) batch; its losses ("loss": the frame loss, and
        each auxiliary loss of the model, unweighted), or None if the step was skipped."""
        frames = frames.to(self.device, non_blocking=True)
        mask, ctx_mask = self._masks(frames.shape[0], frames.shape[1])
        if self.cfg.reverse_time:  # also learn the time-reversed sequences (reference code)
            frames = torch.cat([frames, frames.flip(1)])
            mask = None if mask is None else torch.cat([mask, mask])
            ctx_mask = None if ctx_mask is None else torch.cat([ctx_mask, ctx_mask])
        self._set_lr()
        self.optimizer.zero_grad(set_to_none=True)
        aux: dict[str, Tensor] = {}
        with autocast(self.device, self.cfg.precision):
            preds = self.model(frames, self.context_len, mask, ctx_mask, aux=aux)
        k = self.raw_model.forecast_channels  # given inputs are the data's own, not scored
        loss = frame_loss(preds.float()[:, :, :k], frames[:, 1:, :k].float(), self.cfg.loss)
        total = loss + self.cfg.decouple_beta * aux["decoupling_loss"] if aux else loss
        grad_norm = self._backward(total)
        losses = self._global({"loss": loss, **aux})
        # (with a gradient scaler, fp16 gradients that overflow are skipped by the scaler)
        grad_ok = self.scaler is not None or math.isfinite(grad_norm)
        if not (math.isfinite(sum(losses.values())) and grad_ok):
            return self._not_finite(losses["loss"], grad_norm)
        self._step()
        return losses

    def _backward(self, total: Tensor) -> float:
        """Backward (scaled for fp16), then clip; the gradient norm before clipping."""
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        if self.scaler is None:
            total.backward()
        else:
            self.scaler.scale(total).backward()
            self.scaler.unscale_(self.optimizer)
        return torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), clip).item()

    def _step(self) -> None:
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.raw_model)

    @staticmethod
    def _global(losses: dict[str, Tensor]) -> dict[str, float]:
        """The global batch's losses (mean of the equal per-rank means): the same values, and
        so the same NaN decision, on every rank, and the values a 1-process run logs."""
        stacked = torch.stack([v.detach().float() for v in losses.values()])
        total = dist_utils.all_reduce_sum(stacked) / dist_utils.world_size()
        return dict(zip(losses, total.tolist()))

    def _not_finite(self, loss: float, grad_norm: float) -> None:
        what, value = ("loss", loss) if not math.isfinite(loss) else ("gradient norm", grad_norm)
        if math.isfinite(loss) and math.isfinite(grad_norm):
            what, value = "auxiliary loss", math.nan
        if self.cfg.on_nan == "stop":
            raise TrainingError(
                f"the {what} became {value} at step {self.state.step + 1}; the last good "
                "checkpoint is kept (train.on_nan=skip skips such batches instead)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.state.skipped += 1
        self.log(
            f"step {self.state.step + 1}: the {what} is not finite; batch skipped "
            f"({self.state.skipped} so far)"
        )
        return None

    # ---------------------------------------------------------------- the loop
    def fit(self) -> TrainState:
        cfg, start = self.cfg, self.state.step
        if start >= cfg.steps:
            self.log(f"nothing to do: the run is at step {start} of {cfg.steps}")
            return self.state
        main = dist_utils.is_main()
        log = TrainingLog(
            self.outputs.log_csv, self.outputs.tensorboard, total=cfg.steps, start=start
        ) if main else None  # fmt: skip
        self._speed = (time.perf_counter(), 0)
        self.raw_model.train()
        try:
            with StopSignals() as signals:
                self._loop(start, log, signals)
        finally:
            if log is not None:
                log.close()
        dist_utils.barrier()  # rank 0's last checkpoint is on disk before any rank reads it
        return self.state

    def _loop(self, start: int, log: TrainingLog | None, signals: StopSignals) -> None:
        for frames in self._batches(start):
            losses = self.train_step(frames)  # fetch -> forward -> backward -> step
            self.state.step += 1
            if self._after_step(losses, log, signals):
                return

    def _after_step(
        self, losses: dict[str, float] | None, log: TrainingLog | None, signals
    ) -> bool:
        """The hooks of one finished step; True when training must stop."""
        row = self._row(losses)
        best = self._validate_if_due(row)
        if log is not None:
            log.write(row)
        # Logged first, saved second: a kill in between leaves a row past the checkpoint,
        # which a resume drops, never a checkpoint whose row is missing.
        saved = self._save_if_due(best)
        return self._stop_if_signalled(signals, saved)

    def _row(self, losses: dict[str, float] | None) -> dict:
        step = self.state.step
        row = {"step": step, "eta": self.cfg.sampling.etas(step - 1)[1], **(losses or {})}
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        t_last, seqs = self._speed
        seqs += self.cfg.batch_size
        if step % self.cfg.log_every == 0 or step == self.cfg.steps:
            now = time.perf_counter()
            row["seq_per_s"] = seqs / max(now - t_last, 1e-9)
            t_last, seqs = now, 0
        self._speed = (t_last, seqs)
        return row

    def _validate_if_due(self, row: dict) -> bool:
        """Validate on schedule; True when this step is the best so far."""
        step = self.state.step
        if self.validate is None or (step % self.cfg.val_every and step != self.cfg.steps):
            return False
        try:
            row["val_mse"] = self.validate(self.eval_model)
        except DataError as e:
            raise DataError(f"validation at step {step}: {e}") from e
        self.raw_model.train()
        if row["val_mse"] < self.state.best_val:
            self.state.best_val, self.state.best_step = row["val_mse"], step
            return True
        return False

    def _save_if_due(self, best: bool) -> bool:
        step = self.state.step
        due = best or step % self.cfg.checkpoint_every == 0 or step == self.cfg.steps
        if due:
            self.save(best=best)
        return due

    def _stop_if_signalled(self, signals: StopSignals, saved: bool) -> bool:
        if not dist_utils.any_process(signals.received is not None):  # all ranks stop together
            return False
        self.state.stopped_by = signals.received or "a signal to another process"
        if not saved:
            self.save()
        self.log(
            f"stopped by {self.state.stopped_by} at step {self.state.step}; checkpoint saved, "
            "continue with --resume"
        )
        return True

    def _batches(self, start: int) -> Iterator[Tensor]:
        """The batches of steps start..steps-1; a data error while reading one names the step
        it was for."""
        sampler = StepSampler(
            len(self.train_set),
            batch_size=self.cfg.batch_size,
            seed=self.cfg.seed,
            steps=range(start, self.cfg.steps),
            rank=dist_utils.rank(),
            world=dist_utils.world_size(),
        )
        loader = DataLoader(self.train_set, batch_sampler=sampler, num_workers=self.num_workers)
        it = iter(loader)
        while True:
            try:
                frames = next(it)
            except StopIteration:
                return
            except DataError as e:
                msg = str(e).strip()
                if "Original Traceback" in msg:  # raised in a DataLoader worker: keep its message
                    msg = msg.splitlines()[-1].split(": ", 1)[-1]
                raise DataError(f"step {self.state.step + 1}: {msg}") from e
            yield frames
