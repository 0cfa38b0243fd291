"""Typed, validated settings: the one mechanism behind ModelConfig and every run-config section.

A setting is a dataclass field made with `setting(default, ...)`: its type is the annotation and
its valid values (a range, a set of choices) are written next to its default, once. From these
`build_section` turns a plain mapping (YAML, `--set`) into the dataclass, naming any unknown
key, wrong type or out-of-range value in one line (`ConfigError`), and `check_rules` validates
an instance built in Python. The test suite reads the same rules to generate invalid values.
A data set's options are checked by the same `typed_value`, from the annotations of its
`__init__` (`Annotated[int, Rule(low=1)]` where a bound is known; see data/base.py).
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import functools
import math
import numbers
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from mimcast.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """Valid values of one setting. Bounds are inclusive (`low`, `high`) or exclusive (`above`)."""

    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    above: float | None = None

    def problem(self, value: Any) -> str | None:
        """Why `value` is invalid, or None. Lists are checked element by element."""
        if isinstance(value, (list, tuple)):
            return next((p for p in map(self.problem, value) if p), None)
        if value is None:
            return None
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if self.low is not None and value < self.low:
            return f"must be >= {self.low:g}, got {value!r}"
        if self.high is not None and value > self.high:
            return f"must be <= {self.high:g}, got {value!r}"
        if self.above is not None and value <= self.above:
            return f"must be > {self.above:g}, got {value!r}"
        return None


def setting(default: Any, doc: str = "", **rule: Any) -> Any:
    """A dataclass field with its rule; list and dict defaults are copied per instance."""
    meta = {"rule": Rule(**rule), "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def rule_of(cls: type, name: str) -> Rule:
    """The rule of setting `name` of a settings dataclass (no rule: any value of its type)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.metadata.get("rule", Rule())


def check_rules(obj: Any, where: str) -> None:
    """Raise ConfigError for the first field of `obj` whose value breaks its rule."""
    for f in dataclasses.fields(obj):
        problem = f.metadata.get("rule", Rule()).problem(getattr(obj, f.name))
        if problem:
            raise ConfigError(f"{where}.{f.name} {problem}")


def validate(obj: Any, where: str) -> None:
    """Check (and normalise: list -> tuple, int -> float) every field of a settings dataclass
    against its annotation and rule; called by each settings class's __post_init__, so a
    config built in Python is checked exactly like one read from YAML."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = typed_value(getattr(obj, f.name), hints[f.name], f"{where}.{f.name}")
        object.__setattr__(obj, f.name, value)  # frozen dataclasses too
    check_rules(obj, where)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def typed_value(value: Any, hint: Any, key: str) -> Any:
    """`value` converted to the annotated type (int stays int, tuple[int, ...] from a list), or
    a ConfigError naming the key. `Annotated[T, Rule(...)]` also checks the rule (data-set
    options carry their bounds so); of a union, the first type that fits is taken."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        inner, *rules = typing.get_args(hint)
        value = typed_value(value, inner, key)
        for rule in (r for r in rules if isinstance(r, Rule)):
            problem = rule.problem(value)
            if problem:
                raise ConfigError(f"{key} {problem}")
        return value
    if origin in (typing.Union, types.UnionType):
        return _union_value(value, typing.get_args(hint), key)
    if origin in _SEQUENCES:
        return _sequence_value(value, hint, key)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build_section(hint, value, key)
    if hint is Any:
        return value
    return _scalar(value, hint, key)


_SEQUENCES = (list, tuple, collections.abc.Sequence)  # from YAML: lists (a Sequence: a tuple)


def _union_value(value: Any, args: tuple[Any, ...], key: str) -> Any:
    if value is None and type(None) in args:
        return None
    members = [a for a in args if a is not type(None)]
    listed = isinstance(value, (list, tuple))  # a list is tried only as a list, and so on
    tried = [m for m in members if (typing.get_origin(m) in _SEQUENCES) == listed] or members
    if len(tried) == 1:
        return typed_value(value, tried[0], key)  # its own message, which says more
    for member in tried:
        try:
            return typed_value(value, member, key)
        except ConfigError:
            continue
    kinds = " or ".join(_SCALARS[m][1] if m in _SCALARS else getattr(m, "__name__", str(m))
                        for m in tried)  # fmt: skip
    raise ConfigError(f"{key} must be {kinds}, got {value!r}")


def _sequence_value(value: Any, hint: Any, key: str) -> Any:
    """A list or tuple of the annotated items; tuple[X, Y] also of that length."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} must be a list, got {value!r}")
    fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
    if fixed and len(value) != len(args):
        raise ConfigError(f"{key} must be a list of {len(args)} values, got {value!r}")
    inners = args if fixed else [args[0]] * len(value)
    items = [typed_value(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, inners))]
    return items if origin is list else tuple(items)


# annotation -> (accepted Python types, what the message calls it, conversion); numbers of
# numpy (np.int64 from an array's shape) count as numbers
_SCALARS: dict[Any, tuple[tuple[type, ...], str, Any]] = {
    dict: ((dict,), "a mapping", dict),
    bool: ((bool,), "true or false", bool),
    int: ((numbers.Integral,), "an integer", int),
    float: ((numbers.Real,), "a number", float),
    str: ((str, int, float), "a string", str),
    os.PathLike: ((os.PathLike,), "a path", lambda v: v),
}


# YAML 1.1 (PyYAML) reads 4e-3, without a dot, as a string: it is a number here
_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _scalar(value: Any, hint: Any, key: str) -> Any:
    if hint not in _SCALARS:
        raise TypeError(f"unsupported setting type {hint} for {key}")
    if hint is float and isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        value = float(value)
    kinds, what, convert = _SCALARS[hint]
    if not isinstance(value, kinds) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {what}, got {value!r}")
    return convert(value)


def build_section(cls: type, data: Any, where: str, exclude: tuple[str, ...] = ()) -> Any:
    """A settings dataclass from a mapping: unknown keys, wrong types and broken rules are
    ConfigErrors naming the key (`where.key`). Keys in `exclude` are refused: they are set
    elsewhere (the frame shape of a model comes from the data)."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where} must be a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.name not in exclude]
    for key in data:
        if key in exclude:
            raise ConfigError(f"{where}.{key} is not a setting here: it is taken from the data")
        if key not in names:
            raise ConfigError(
                f"unknown config key {where}.{key} (valid keys in {where}: {', '.join(names)})"
            )
    hints = _hints(cls)
    kwargs = {k: typed_value(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)  # its __post_init__ validates the whole section


def to_plain(obj: Any) -> Any:
    """A settings dataclass as plain dicts, lists and scalars (YAML- and JSON-ready)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def merge(base: dict, override: dict) -> dict:
    """The one merge rule of presets, files and flags: mappings merge key by key, recursively;
    any other value (lists included) replaces the one below."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
