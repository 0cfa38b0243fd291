"""Build any dataset from a name and options: ``build_dataset("taxibj", "train", root=...)``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any

from mimcast.errors import DataError
from mimcast.settings import Rule

from . import stationarity
from .base import SequenceDataset, check_split, checked_options, init_options
from .custom import CustomDataset
from .kth import KTH
from .mmnist import AcceleratedMovingMNIST, MovingMNIST, MovingMNISTFile
from .taxibj import TaxiBJ
from .video import VideoDataset

Factory = Callable[..., SequenceDataset]
STATIONARITY_HINTS = {  # every data set takes them
    "stationarity": Annotated[str | None, Rule(choices=stationarity.KINDS)],
    "stationarity_quantile": float,
}
STATIONARITY_OPTIONS = tuple(STATIONARITY_HINTS)


def _generated(cls: type[MovingMNIST]) -> Factory:
    def factory(split: str, root: Any = None, **options: Any) -> SequenceDataset:
        # Generated data needs no root; a root given here is the MNIST digit source.
        if root is not None:
            if options.get("digit_source") is not None:
                raise DataError(
                    f"{cls.name}: give the MNIST files as root or digit_source, not both"
                )
            options["digit_source"] = root
        return cls(split, **options)

    factory.__wrapped_cls__ = cls  # type: ignore[attr-defined]
    return factory


def _with_root(cls: type[SequenceDataset]) -> Factory:
    def factory(split: str, root: Any = None, **options: Any) -> SequenceDataset:
        if root is None:
            raise DataError(f"dataset {cls.name!r} needs root=<path to its files>")
        return cls(root, split, **options)

    factory.__wrapped_cls__ = cls  # type: ignore[attr-defined]
    return factory


_REGISTRY: dict[str, Factory] = {
    "mmnist": _generated(MovingMNIST),
    "mmnist-accel": _generated(AcceleratedMovingMNIST),
    "mmnist-file": _with_root(MovingMNISTFile),
    "kth": _with_root(KTH),
    "taxibj": _with_root(TaxiBJ),
    "custom": _with_root(CustomDataset),
    "video": _with_root(VideoDataset),
}


def register_dataset(name: str, factory: Factory) -> None:
    """Add a dataset: ``factory(split, root=None, **options) -> SequenceDataset``."""
    if name in _REGISTRY:
        raise DataError(f"dataset {name!r} is already registered")
    _REGISTRY[name] = factory


def list_datasets() -> list[str]:
    """Names accepted by `build_dataset`, sorted."""
    return sorted(_REGISTRY)


def dataset_options(name: str) -> list[str]:
    """Keyword options of dataset ``name`` (besides split and root), sorted."""
    return sorted(option_hints(name))


def option_hints(name: str) -> dict[str, Any]:
    """The options of dataset ``name`` with their annotations, which type and bound them (the
    keyword-only arguments of its class's __init__ and of the bases it passes them on to)."""
    cls = getattr(_get(name), "__wrapped_cls__", None)
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__ if cls is not None else ()):
        init = klass.__dict__.get("__init__")
        if init is not None and issubclass(klass, SequenceDataset):
            hints.update(init_options(init))  # a subclass's own annotation wins
    return hints


def dataset_class(name: str) -> type[SequenceDataset]:
    """The SequenceDataset class behind dataset `name` (its options, its run defaults)."""
    factory = _get(name)
    return getattr(factory, "__wrapped_cls__", SequenceDataset)


def _get(name: str) -> Factory:
    if name not in _REGISTRY:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(list_datasets())}")
    return _REGISTRY[name]


def build_dataset(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    **options: Any,
) -> SequenceDataset:
    """Build dataset ``name`` for ``split`` ("train", "val", "test").

    ``root`` is the data's file or folder (for generated Moving MNIST: optional MNIST digit
    files). ``stationarity``
    ("stationary" or "non-stationary", any data set) keeps one side of the split of
    `mimcast.data.stationarity`, at ``stationarity_quantile`` (0.5) of the training split's
    scores. Unknown names and options raise DataError listing the valid ones. Items are float32
    (T, C, H, W) in model units.
    """
    factory = _get(name)
    check_split(split, name)
    given = {k: options.pop(k) for k in STATIONARITY_HINTS if k in options}
    given = checked_options(STATIONARITY_HINTS, given, name)
    kind, quantile = given.get("stationarity"), given.get("stationarity_quantile", 0.5)
    valid = dataset_options(name)
    unknown = sorted(set(options) - set(valid))
    if valid and unknown:
        raise DataError(
            f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; valid: "
            f"{', '.join([*valid, *STATIONARITY_OPTIONS])}"
        )
    ds = factory(split, root, **options)
    if kind is not None:
        train = ds if split == "train" else factory("train", root, **options)
        ds = stationarity.StationaritySubset(ds, kind, stationarity.threshold(train, quantile))
    return ds
