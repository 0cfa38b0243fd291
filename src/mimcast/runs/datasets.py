"""The data sets of a run config: built per split with the config's options, checked early."""

from __future__ import annotations

from mimcast.data import DataSpec, SequenceDataset, build_dataset, dataset_options
from mimcast.data.registry import STATIONARITY_OPTIONS
from mimcast.errors import ConfigError, MimcastError
from mimcast.training.config import RunConfig, config_from_dict


def build_splits(cfg: RunConfig, splits: tuple[str, ...]) -> dict[str, SequenceDataset]:
    """Each split's data set; val and test also get `data.eval_options`. Raises a one-line
    error for a bad option before anything is trained or written."""
    d = cfg.data
    out = {}
    for split in splits:
        options = dict(d.options)
        if split != "train":
            options.update(d.eval_options)
        try:
            out[split] = build_dataset(d.name, split, root=d.root, **options)
        except MimcastError:
            raise
        except (TypeError, ValueError) as e:  # an option of the wrong type (data.options)
            raise ConfigError(f"data set {d.name!r}, {split} split: bad data.options: {e}") from e
    return out


def on_other_data(cfg: RunConfig, name: str | None, root: str | None) -> RunConfig:
    """A run's config on other data (`evaluate --data/--data-root`). For another data set,
    the run's options that it does not take are dropped; those it does (seq_len,
    context_len) are kept."""
    name = name or cfg.data.name
    plain = cfg.to_dict()
    plain["data"].update(name=name, root=root or cfg.data.root)
    if name != cfg.data.name:
        valid = set(dataset_options(name)) | set(STATIONARITY_OPTIONS)
        for key in ("options", "eval_options"):
            plain["data"][key] = {k: v for k, v in plain["data"][key].items() if k in valid}
    return config_from_dict(plain)


def describe_splits(cfg: RunConfig) -> str:
    """What the config's data set resolves to, split by split (`mimcast data info`)."""
    splits = build_splits(cfg, ("train", "val", "test"))
    first = splits["train"]
    spec = DataSpec.from_dataset(first)
    (lo, hi), (d_lo, d_hi) = spec.value_range, spec.data_range()
    c, h, w = spec.frame_shape
    lines = [
        f"data set: {cfg.data.name}" + (f" from {first.source}" if first.source else ""),
        f"frames: {c} x {h} x {w} (C, H, W); train sequences of {first.seq_len} frames, "
        f"context {first.context_len} -> {first.seq_len - first.context_len} predicted",
        f"values: model units [{lo:.4g}, {hi:.4g}] = {spec.units} [{d_lo:.4g}, {d_hi:.4g}] "
        f"(data = model x {_one(spec.scale)} + {_one(spec.offset)})",
    ]
    for name, ds in splits.items():
        lines.append(f"{name}: {len(ds)} windows of {ds.seq_len} frames (context {ds.context_len})")
    if first.split_rule:
        lines.append(f"split: {first.split_rule}")
    notes = dict.fromkeys(ds.note for ds in splits.values() if ds.note)
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def _one(values: tuple[float, ...]) -> str:
    return f"{values[0]:g}" if len(values) == 1 else "[" + ", ".join(f"{v:g}" for v in values) + "]"
