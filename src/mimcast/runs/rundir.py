"""A run folder: every path and file name in it, its ownership marker, its lock, its files.

    .mimcast-run.json  the marker: written when mimcast creates the run (format, version, time);
                       only a folder with a valid marker is a mimcast run
    .mimcast.lock      the lock of the process training in it (see lock.py)
    config.yaml        the resolved RunConfig
    model.json         the ModelConfig with the data's frame shape: rebuilds the model alone
    data.json          the DataSpec: frame shape, value range and units of the data
    log.csv, tb/       the training log (TensorBoard when installed)
    checkpoints/       step folders and last.json / best.json pointers (training/checkpoint.py)
    eval/<split>/      metrics.json, metrics.csv, table.txt, curves, strips, GIFs
    report.md          metrics table and pictures
    experiment.json    a study's record of the run (mimcast experiment)
    .mimcast-previous/ the run an --overwrite replaced, until the new run finishes

Nothing else in the folder is mimcast's: --overwrite moves and deletes only these entries (and
inside checkpoints/, eval/ and tb/ only the files mimcast writes there), never through a
symbolic link, and refuses to start when an entry has been replaced by something else.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml

from mimcast.data import DataSpec
from mimcast.errors import ConfigError, DataError
from mimcast.fs import atomic_write, atomic_write_json, has_marker, remove_owned, write_marker
from mimcast.models import ModelConfig
from mimcast.runs.lock import RunLock
from mimcast.training.checkpoint import is_checkpoint_file
from mimcast.training.config import RunConfig, config_from_dict
from mimcast.training.trainer import TrainerOutputs

MARKER_FORMAT = "mimcast-run-1"
_EVAL_FILE = re.compile(
    r"metrics\.(json|csv)|table\.txt|framewise_\w+\.png|(strip|diff)_\d+\.png|sequence_\d+\.gif"
)


class EvalFiles:
    """The files of eval/<split>/ (or of a staging folder for it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.metrics_json = folder / "metrics.json"
        self.metrics_csv = folder / "metrics.csv"
        self.table = folder / "table.txt"

    def curve(self, metric: str) -> Path:
        return self.folder / f"framewise_{metric}.png"

    def strip(self, i: int) -> Path:
        return self.folder / f"strip_{i}.png"

    def gif(self, i: int) -> Path:
        return self.folder / f"sequence_{i}.gif"

    def diff(self, i: int) -> Path:
        return self.folder / f"diff_{i}.png"

    @staticmethod
    def is_owned(rel: Path) -> bool:
        return len(rel.parts) == 1 and bool(_EVAL_FILE.fullmatch(rel.name))


class RunDir:
    MARKER = ".mimcast-run.json"
    LOCK = ".mimcast.lock"
    PREVIOUS = ".mimcast-previous"
    FILES = ("config.yaml", "model.json", "data.json", "log.csv", "report.md", "experiment.json")
    FOLDERS = ("checkpoints", "eval", "tb")

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.model = self.path / "model.json"
        self.data = self.path / "data.json"
        self.log = self.path / "log.csv"
        self.report = self.path / "report.md"
        self.study_record = self.path / "experiment.json"
        self.checkpoints = self.path / "checkpoints"
        self.eval_root = self.path / "eval"
        self.eval_lock = self.eval_root / ".lock"  # held while an evaluation is swapped in
        self.tensorboard = self.path / "tb"

    def __str__(self) -> str:
        return str(self.path)

    def eval_dir(self, split: str) -> EvalFiles:
        return EvalFiles(self.eval_root / split)

    def trainer_outputs(self) -> TrainerOutputs:
        return TrainerOutputs(self.checkpoints, self.log, self.tensorboard)

    # ------------------------------------------------------------------ what the folder is
    def is_run(self) -> bool:
        """True when the folder holds a valid mimcast marker."""
        return has_marker(self.path / self.MARKER, MARKER_FORMAT)

    def require_run(self) -> None:
        if not self.is_run():
            raise ConfigError(
                f"{self.path} is not a mimcast run folder (no valid {self.MARKER}; a folder "
                "becomes one when `mimcast train` creates it)"
            )

    def owned_entries(self) -> list[Path]:
        """The top-level entries mimcast wrote that exist here (marker and lock excluded)."""
        names = (*self.FILES, *self.FOLDERS)
        return [
            self.path / n for n in names if (self.path / n).exists() or (self.path / n).is_symlink()
        ]

    def check_usable(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse (ConfigError) any use of the folder that could lose a file; writes nothing."""
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite exclude each other")
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"run folder {self.path} exists and is not a folder")
        if resume:
            self.require_run()
            return
        if not self.path.is_dir() or all(p.name == self.LOCK for p in self.path.iterdir()):
            return  # new or empty (but for our own lock file)
        if not self.is_run():
            raise ConfigError(
                f"run folder {self.path} is not empty and not a mimcast run (no {self.MARKER}): "
                "choose another --run-dir"
            )
        if not overwrite:
            raise ConfigError(
                f"run folder {self.path} already holds a run: pass --resume to continue it or "
                "--overwrite to start it again"
            )
        self._check_replaceable()

    def _check_replaceable(self) -> None:
        """Every owned entry is what mimcast writes there: no link, no foreign file inside."""
        for p in self.owned_entries():
            if p.is_symlink():
                raise ConfigError(
                    f"{p} is a symbolic link mimcast did not make: --overwrite never deletes "
                    "through a link; remove or replace it first"
                )
            want_dir = p.name in self.FOLDERS
            if p.is_dir() != want_dir:
                kind = "a folder" if want_dir else "a file"
                raise ConfigError(f"{p} should be {kind} written by mimcast; move it away first")
            foreign = self.foreign_files(p) if want_dir else []
            if foreign:
                raise ConfigError(
                    f"{p} holds files mimcast did not write ({', '.join(foreign[:3])}): "
                    "--overwrite would move them; move them away first"
                )

    def foreign_files(self, folder: Path) -> list[str]:
        """Files (and links) under an owned folder that mimcast did not write, relative."""
        out = []
        for q in sorted(folder.rglob("*")):
            rel = q.relative_to(self.path)
            if q.is_symlink() or (q.is_file() and not self.is_owned(rel)):
                out.append(str(q.relative_to(folder)))
        return out

    # ------------------------------------------------------------------ ownership
    def is_owned(self, rel: Path) -> bool:
        """Whether a path (relative to the run folder) is one mimcast writes."""
        top, rest = rel.parts[0], Path(*rel.parts[1:]) if len(rel.parts) > 1 else None
        if rest is None:
            return top in (*self.FILES, self.MARKER, self.LOCK)
        if top == "checkpoints":
            return is_checkpoint_file(rest)
        if top == "eval":
            if len(rest.parts) == 1:
                return rest == self.eval_lock.relative_to(self.eval_root)
            return len(rest.parts) == 2 and EvalFiles.is_owned(Path(rest.parts[1]))
        if top == "tb":
            return len(rest.parts) == 1 and rest.name.startswith("events.out.tfevents.")
        return False

    def retire(self) -> Path | None:
        """--overwrite: move the old run's entries into .mimcast-previous/ (renames only), so it
        stays recoverable until the new run finishes; returns that folder, or None if empty."""
        entries = self.owned_entries()
        if not entries:
            return None
        previous = self.path / self.PREVIOUS
        if previous.exists() or previous.is_symlink():
            self.drop_previous()
            if previous.exists() or previous.is_symlink():
                raise ConfigError(
                    f"{previous} holds files mimcast did not write: move them away first"
                )
        previous.mkdir()
        for p in entries:
            os.replace(p, previous / p.name)
        return previous

    def drop_previous(self) -> list[Path]:
        """Delete the retired run's files (only mimcast's); returns what was left there."""
        previous = self.path / self.PREVIOUS
        return remove_owned(previous, lambda rel: self.is_owned(rel))

    # ------------------------------------------------------------------ creating and writing
    def lock(self, command: str) -> RunLock:
        self.path.mkdir(parents=True, exist_ok=True)
        return RunLock(self.path / self.LOCK, command)

    def create(self) -> None:
        """Mark the folder as a mimcast run (kept when the run is resumed)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.is_run():
            write_marker(self.path / self.MARKER, MARKER_FORMAT)

    def write_config(self, cfg: RunConfig) -> None:
        atomic_write(self.config, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    def write_model_config(self, mcfg: ModelConfig) -> None:
        atomic_write_json(self.model, mcfg.to_dict())

    def write_data_spec(self, spec: DataSpec) -> None:
        atomic_write_json(self.data, spec.to_dict())

    def write_report(self, text: str) -> None:
        atomic_write(self.report, text)

    def write_study_record(self, record: dict) -> None:
        atomic_write_json(self.study_record, record)

    # ------------------------------------------------------------------ reading
    def read_config(self) -> RunConfig:
        self.require_run()
        try:
            data = yaml.safe_load(self.config.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ConfigError(f"{self.config} cannot be read: {e}") from e
        try:
            return config_from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{self.config} is damaged: {e}") from e

    def read_model_config(self) -> ModelConfig:
        try:
            return ModelConfig.from_dict(json.loads(self.model.read_text()))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{self.model} is damaged or missing: {e}") from e

    def read_data_spec(self) -> DataSpec:
        try:
            raw = json.loads(self.data.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{self.data} is damaged or missing: {e}") from e
        return DataSpec.from_dict(raw, str(self.data))

    def read_study_record(self) -> dict | None:
        try:
            record = json.loads(self.study_record.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None
