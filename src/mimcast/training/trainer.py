"""The training loop. It knows the Forecaster protocol (frames, context_len, masks), not models.

Determinism: the batch of step s and its scheduled-sampling masks are functions of (seed, s),
so a run resumed from a checkpoint sees exactly the data and masks of an uninterrupted one, and
a run on N processes sees the same global batches as a run on one (each rank takes its slice).
"""

from __future__ import annotations

import contextlib
import csv
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from mimcast.errors import DataError, MimcastError
from mimcast.training import distributed as dist_utils
from mimcast.training.checkpoint import load_checkpoint, load_weights, save_checkpoint
from mimcast.training.config import TrainSection
from mimcast.training.sampling import SamplingSchedule


class TrainingError(MimcastError):
    """Training cannot go on (a NaN loss, say); the message names the step."""


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Dataset indices of the global batch at `step`: epochs are seeded permutations of range(n)."""
    out = []
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, k = divmod(pos, n)
        perm = _permutation(n, seed, epoch)
        out.append(int(perm[k]))
    return out


_PERM_CACHE: dict[tuple[int, int, int], np.ndarray] = {}


def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    key = (n, seed, epoch)
    if key not in _PERM_CACHE:
        if len(_PERM_CACHE) > 4:
            _PERM_CACHE.clear()
        _PERM_CACHE[key] = np.random.default_rng([seed, epoch]).permutation(n)
    return _PERM_CACHE[key]


class StepSampler(Sampler[list[int]]):
    """Yields this rank's slice of the global batch for steps start..stop-1."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int) -> None:
        self.n, self.batch_size, self.seed, self.start, self.stop = n, batch_size, seed, start, stop
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        if batch_size % self.world:
            raise TrainingError(
                f"train.batch_size {batch_size} is not divisible by the {self.world} processes"
            )

    def __iter__(self) -> Iterator[list[int]]:
        per = self.batch_size // self.world
        for step in range(self.start, self.stop):
            idx = batch_indices(step, self.batch_size, self.n, self.seed)
            yield idx[self.rank * per : (self.rank + 1) * per]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision context: bf16 on CPU, bf16 or fp16 on CUDA; fp32 master weights."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class TrainState:
    step: int = 0  # number of optimizer steps done
    best_val: float = math.inf
    best_step: int = -1
    skipped: int = 0
    stopped_by: str | None = None  # the signal that stopped the run early (SIGINT, SIGTERM)


class Trainer:
    """Fits a Forecaster on a dataset of (T, C, H, W) sequences with L2 loss and Adam."""

    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset,
        cfg: TrainSection,
        run_dir: Path,
        context_len: int,
        validate: Callable[[nn.Module], float] | None = None,
        log: Callable[[str], None] = print,
        num_workers: int = 0,
    ) -> None:
        self.cfg = cfg
        self.num_workers = num_workers
        self.device = torch.device(cfg.device)
        self.raw_model = model.to(self.device)
        if cfg.channels_last:
            self.raw_model = self.raw_model.to(memory_format=torch.channels_last)
        self.model = dist_utils.wrap(self.raw_model, self.device)
        self.train_set = train_set
        self.context_len = context_len
        self.run_dir = Path(run_dir)
        self.validate = validate
        self.log = log
        self.optimizer = torch.optim.Adam(self.raw_model.parameters(), lr=cfg.lr)
        self.schedule = SamplingSchedule(
            cfg.sampling,
            cfg.eta_start,
            cfg.eta_decay,
            cfg.reverse_s1,
            cfg.reverse_s2,
            cfg.reverse_alpha,
        )
        self.state = TrainState()
        self._stop_signal: str | None = None

    # ---------------------------------------------------------------- checkpoints
    def save(self, best: bool = False) -> None:
        if not dist_utils.is_main():
            return
        extra = {
            "best_val": self.state.best_val if math.isfinite(self.state.best_val) else None,
            "best_step": self.state.best_step,
            "skipped": self.state.skipped,
            "eta": self.schedule.etas(self.state.step)[1],
            "sampling": self.cfg.sampling,
        }
        pointers = ("last", "best") if best else ("last",)
        save_checkpoint(
            self.run_dir / "checkpoints",
            self.state.step,
            self.raw_model,
            self.optimizer,
            extra,
            pointers,
        )

    def resume(self) -> None:
        ckpt = load_checkpoint(self.run_dir, "last")
        if ckpt.model_config != self.raw_model.config:
            raise TrainingError(
                f"the checkpoint in {self.run_dir} is of another model ({ckpt.model_config.name}, "
                f"hidden {list(ckpt.model_config.hidden)}): resume with the run's own config"
            )
        load_weights(self.raw_model, ckpt.model, str(ckpt.path))
        if ckpt.optimizer is not None:
            self.optimizer.load_state_dict(ckpt.optimizer)
        best = ckpt.extra.get("best_val")
        self.state = TrainState(
            ckpt.step,
            math.inf if best is None else best,
            ckpt.extra.get("best_step", -1),
            ckpt.extra.get("skipped", 0),
        )
        if "torch_rng" in ckpt.extra:
            torch.set_rng_state(ckpt.extra["torch_rng"])
        if dist_utils.is_main():
            _trim_log(self.run_dir / "log.csv", ckpt.step)

    # ---------------------------------------------------------------- the loop
    def _masks(self, batch: int, seq_len: int) -> tuple[Tensor | None, Tensor | None]:
        """This rank's slice of the global batch's masks (drawn for the global batch)."""
        mask, ctx = self.schedule.masks(
            self.state.step, self.cfg.batch_size, seq_len, self.context_len, self.cfg.seed
        )
        r = dist_utils.rank()

        def pick(m):
            return None if m is None else m[r * batch : (r + 1) * batch].to(self.device)

        return pick(mask), pick(ctx)

    def train_step(self, frames: Tensor) -> float | None:
        """One optimizer step on a (B, T, C, H, W) batch; the loss, or None if skipped."""
        frames = frames.to(self.device, non_blocking=True)
        mask, ctx_mask = self._masks(frames.shape[0], frames.shape[1])
        if self.cfg.reverse_time:  # also learn the time-reversed sequences (reference code)
            frames = torch.cat([frames, frames.flip(1)])
            mask = None if mask is None else torch.cat([mask, mask])
            ctx_mask = None if ctx_mask is None else torch.cat([ctx_mask, ctx_mask])
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.cfg.precision):
            preds = self.model(frames, self.context_len, mask, ctx_mask)
        loss = torch.mean((preds.float() - frames[:, 1:].float()) ** 2)  # L2 loss
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.raw_model.parameters(), self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        )
        # The global batch's loss (mean of the equal per-rank means): the same value, and so the
        # same NaN decision, on every rank, and the loss a 1-process run logs.
        total = dist_utils.all_reduce_sum(loss.detach().float().clone())
        value = total.item() / dist_utils.world_size()
        if not (math.isfinite(value) and torch.isfinite(grad_norm)):
            what = "loss" if not math.isfinite(value) else "gradient norm"
            if self.cfg.on_nan == "stop":
                raise TrainingError(
                    f"the {what} became {value if what == 'loss' else grad_norm.item()} at step "
                    f"{self.state.step + 1}; the last good checkpoint is kept (train.on_nan=skip "
                    "skips such batches instead)"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.state.skipped += 1
            self.log(
                f"step {self.state.step + 1}: the {what} is not finite; batch skipped "
                f"({self.state.skipped} so far)"
            )
            return None
        self.optimizer.step()
        return value

    def fit(self) -> TrainState:
        cfg = self.cfg
        start = self.state.step
        if start >= cfg.steps:
            self.log(f"nothing to do: the run is at step {start} of {cfg.steps}")
            return self.state
        sampler = StepSampler(len(self.train_set), cfg.batch_size, cfg.seed, start, cfg.steps)
        loader = DataLoader(
            self.train_set,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=False,
        )
        main = dist_utils.is_main()
        logger = _CsvLog(self.run_dir / "log.csv") if main else None
        tb = _tensorboard(self.run_dir / "tb") if main else None
        bar = _progress(cfg.steps, start, main)
        t_last, seqs = time.perf_counter(), 0
        old_handlers = self._install_signal_handlers()
        self.raw_model.train()
        try:
            for frames in _named_steps(loader, self.state):
                loss = self.train_step(frames)
                self.state.step += 1
                step = self.state.step
                seqs += cfg.batch_size
                row = {"step": step, "loss": loss, "eta": self.schedule.etas(step - 1)[1]}
                if step % cfg.log_every == 0 or step == cfg.steps:
                    now = time.perf_counter()
                    row["seq_per_s"] = seqs / max(now - t_last, 1e-9)
                    t_last, seqs = now, 0
                val_due = self.validate is not None and (
                    step % cfg.val_every == 0 or step == cfg.steps
                )
                best = False
                if val_due:
                    try:
                        row["val_mse"] = self.validate(self.raw_model)
                    except DataError as e:
                        raise DataError(f"validation at step {step}: {e}") from e
                    self.raw_model.train()
                    if row["val_mse"] < self.state.best_val:
                        self.state.best_val, self.state.best_step, best = row["val_mse"], step, True
                if main:
                    logger.write(row)
                    if tb is not None:
                        for k, v in row.items():
                            if k != "step" and v is not None:
                                tb.add_scalar(k, v, step)
                    bar.update(1)
                    if loss is not None:
                        bar.set_postfix(
                            loss=f"{loss:.4g}",
                            **({"seq/s": f"{row['seq_per_s']:.1f}"} if "seq_per_s" in row else {}),
                        )
                # Logged first, saved second: a kill in between leaves a row past the checkpoint,
                # which a resume drops, never a checkpoint whose row is missing.
                saved = best or step % cfg.checkpoint_every == 0 or step == cfg.steps
                if saved:
                    self.save(best=best)
                if dist_utils.any_process(self._stop_signal is not None):  # all ranks stop
                    self._stop_signal = self._stop_signal or "a signal to another process"
                    self.state.stopped_by = self._stop_signal
                    if not saved:
                        self.save()
                    self.log(
                        f"stopped by {self._stop_signal} at step {step}; checkpoint saved, "
                        "continue with --resume"
                    )
                    break
        finally:
            self._restore_signal_handlers(old_handlers)
            if main:
                bar.close()
                logger.close()
                if tb is not None:
                    tb.close()
        dist_utils.barrier()  # rank 0's last checkpoint is on disk before any rank reads it
        return self.state

    # ---------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> dict:
        def handler(signum, _frame):  # finish the step, save, stop; a second signal aborts
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name

        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handlers
                old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)


def _named_steps(loader: DataLoader, state: TrainState) -> Iterator[Tensor]:
    """The loader's batches; a data error while reading one names the step it was for."""
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
            raise DataError(f"step {state.step + 1}: {msg}") from e
        yield frames


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows after `step` (written after the checkpoint a resume starts from, or cut
    short by a kill), so the resumed run's rows follow on without duplicates."""
    if not path.is_file():
        return
    with open(path, newline="") as f:  # keep the csv module's \r\n line ends as they are
        lines = f.read().splitlines(keepends=True)
    if not lines or not lines[0].endswith("\n"):  # the header itself was cut short
        path.unlink()  # _CsvLog writes a new one
        return
    keep = [lines[0]]
    for line in lines[1:]:
        first = line.split(",", 1)[0]
        if line.endswith("\n") and first.isdigit() and int(first) <= step:
            keep.append(line)
    if len(keep) != len(lines):
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", newline="") as f:
            f.write("".join(keep))
        tmp.replace(path)


class _CsvLog:
    FIELDS = ("step", "loss", "eta", "seq_per_s", "val_mse")

    def __init__(self, path: Path) -> None:
        new = not path.exists()
        self.f = open(path, "a", newline="")  # noqa: SIM115 - closed by close()
        self.w = csv.DictWriter(self.f, fieldnames=self.FIELDS)
        if new:
            self.w.writeheader()

    def write(self, row: dict) -> None:
        self.w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in self.FIELDS})
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - tensorboard is optional
        return None
    return SummaryWriter(str(path))


def _progress(total: int, start: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="step", dynamic_ncols=True)
