"""The data sets of a run config: built per split with the config's options, checked early."""

from __future__ import annotations

from mimcast.data import SequenceDataset, build_dataset
from mimcast.errors import ConfigError, MimcastError
from mimcast.training.config import RunConfig


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
