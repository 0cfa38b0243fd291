"""Every data set's options are typed and bounded by the settings mechanism, as the rest of
the config is: the annotations of its __init__ (issue #24, item 8). The invalid values are
generated from those annotations, for every option of every registered data set."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest

from mimcast.data import SequenceDataset, build_dataset, list_datasets
from mimcast.data.base import init_options
from mimcast.data.registry import STATIONARITY_HINTS, _get, option_hints
from mimcast.errors import DataError
from mimcast.settings import Rule, typed_value

NEEDS_ROOT = {"custom", "kth", "mmnist-file", "taxibj", "video"}


def _members(hint: Any) -> list[Any]:
    """The types a hint allows (a union's members, Annotated's inner type), None left out."""
    if typing.get_origin(hint) is typing.Annotated:
        return _members(typing.get_args(hint)[0])
    if typing.get_origin(hint) in (typing.Union, type(int | None)):
        return [m for a in typing.get_args(hint) if a is not type(None) for m in _members(a)]
    return [hint]


def _rule(hint: Any) -> Rule | None:
    if typing.get_origin(hint) is typing.Annotated:
        return next(r for r in typing.get_args(hint)[1:] if isinstance(r, Rule))
    return None


def invalid_values(hint: Any) -> list[Any]:
    """A mapping (no option takes one), 1.5 where only integers fit, true where only numbers
    do, NaN where a number does, and each bound or choice of its rule broken."""
    members = _members(hint)
    values: list[Any] = [{"wrong": 1}] if dict not in members and Any not in members else []
    if int in members and float not in members and str not in members:
        values.append(1.5)
    if members in ([int], [float]):
        values.append(True)
    if float in members:
        values.append(float("nan"))
    rule = _rule(hint)
    if rule is not None:
        values += [rule.low - 1] if rule.low is not None else []
        values += [rule.high + 1] if rule.high is not None else []
        values += ["no-such-choice"] if rule.choices and str in members else []
        values += [max(map(int, rule.choices)) + 1] if rule.choices and int in members else []
    return values


def cases() -> list[tuple[str, str, Any]]:
    out = [(n, k, v) for n in list_datasets() for k, h in option_hints(n).items()
           for v in invalid_values(h)]  # fmt: skip
    out += [("mmnist", k, v) for k, h in STATIONARITY_HINTS.items() for v in invalid_values(h)]
    return out


CASES = cases()


def test_every_option_of_every_data_set_is_typed_and_its_default_fits() -> None:
    for name in list_datasets():
        assert option_hints(name), name
        for klass in _get(name).__wrapped_cls__.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or not issubclass(klass, SequenceDataset):
                continue
            params = inspect.signature(init).parameters
            for key, hint in init_options(init).items():  # raises where a default does not fit
                typed_value(params[key].default, hint, f"{klass.__name__}.{key}")
    assert {k for n, k, _ in CASES if n == "video"} >= {"size", "channels", "frame_stride"}
    assert len(CASES) > 60


@pytest.mark.parametrize(
    ("name", "key", "value"), CASES, ids=[f"{n}.{k}={v!r}" for n, k, v in CASES]
)
def test_an_option_of_the_wrong_type_or_out_of_bounds_is_refused(
    tmp_path, name, key, value
) -> None:
    root = tmp_path / "none" if name in NEEDS_ROOT else None
    with pytest.raises(DataError, match=rf"^{name}: option {key}(\[\d+\])? must be ") as e:
        build_dataset(name, "train", root=root, **{key: value})
    assert "\n" not in str(e.value)
