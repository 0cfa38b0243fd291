"""The training log: log.csv (one row per step), TensorBoard when installed, a progress bar."""

from __future__ import annotations

import csv
from pathlib import Path

from mimcast.fs import atomic_write

# decoupling_loss: PredRNN-V2's auxiliary loss (unweighted), empty for the other models
FIELDS = ("step", "loss", "decoupling_loss", "eta", "lr", "seq_per_s", "val_mse")


def trim_log(path: Path, step: int) -> None:
    """Drop log rows after `step` (written after the checkpoint a resume starts from, or cut
    short by a kill), so the resumed run's rows follow on without duplicates."""
    if not path.is_file():
        return
    with open(path, newline="") as f:  # keep the csv module's \r\n line ends as they are
        lines = f.read().splitlines(keepends=True)
    if not lines or not lines[0].endswith("\n"):  # the header itself was cut short
        path.unlink()  # TrainingLog writes a new one
        return
    keep = [lines[0]]
    for line in lines[1:]:
        first = line.split(",", 1)[0]
        if line.endswith("\n") and first.isdigit() and int(first) <= step:
            keep.append(line)
    if len(keep) != len(lines):
        atomic_write(path, "".join(keep))


class TrainingLog:
    """Appends rows to log.csv and TensorBoard and moves the progress bar; rank 0 only."""

    def __init__(self, csv_path: Path, tb_dir: Path | None, *, total: int, start: int) -> None:
        from tqdm.auto import tqdm

        new = not csv_path.exists()
        self._file = open(csv_path, "a", newline="")  # noqa: SIM115 - closed by close()
        self._csv = csv.DictWriter(self._file, fieldnames=FIELDS)
        if new:
            self._csv.writeheader()
        self._tb = _tensorboard(tb_dir) if tb_dir is not None else None
        self._bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def write(self, row: dict) -> None:
        self._csv.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in FIELDS})
        self._file.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and v is not None:
                    self._tb.add_scalar(k, v, row["step"])
        self._bar.update(1)
        if row.get("loss") is not None:
            speed = {"seq/s": f"{row['seq_per_s']:.1f}"} if row.get("seq_per_s") else {}
            self._bar.set_postfix(loss=f"{row['loss']:.4g}", **speed)

    def close(self) -> None:
        self._bar.close()
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - tensorboard is optional
        return None
    return SummaryWriter(str(path))
