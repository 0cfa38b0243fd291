"""A run's data.json (DataSpec) read back: the same spec, or one line naming what is damaged."""

from __future__ import annotations

import pytest

from mimcast.data import DataSpec
from mimcast.errors import DataError

SPEC = DataSpec(frame_shape=(2, 8, 12), value_range=(0.0, 1.0), units="K", scale=(10.0, 20.0),
                offset=(250.0, 0.0), context_len=4, name="custom")  # fmt: skip


def test_a_spec_survives_its_file() -> None:
    assert DataSpec.from_dict(SPEC.to_dict(), "data.json") == SPEC


@pytest.mark.parametrize(
    "change, says",
    [
        ({"frame_shape": [2, 0, 12]}, "frame_shape [2, 0, 12] is not three positive sizes"),
        ({"frame_shape": [8, 12]}, "frame_shape [8, 12]"),
        ({"value_range": [1.0, 0.0]}, "value_range [1.0, 0.0] is not two finite values"),
        ({"value_range": [0.0, float("nan")]}, "value_range"),
        ({"units_scale": [1.0, 2.0, 3.0], "units_offset": [0, 0, 0]}, "one per channel (2)"),
        ({"units_offset": [0.0]}, "not 2 and 1"),
        ({"units_scale": [0.0, 1.0]}, "finite and non-zero"),
        ({"units_offset": [float("inf"), 0.0]}, "finite and non-zero"),
        ({"context_len": 0}, "context_len 0 is below 1"),
        ({"frame_shape": "abc"}, "is damaged: ValueError"),
        ({"units_scale": None}, "is damaged"),
    ],
)
def test_a_damaged_spec_is_one_line(change: dict, says: str) -> None:
    with pytest.raises(DataError) as e:
        DataSpec.from_dict({**SPEC.to_dict(), **change}, "run/data.json")
    msg = str(e.value)
    assert msg.startswith("run/data.json is damaged: ") and says in msg and "\n" not in msg


def test_a_missing_key_is_named() -> None:
    d = SPEC.to_dict()
    del d["units_scale"]
    with pytest.raises(DataError, match=r"run/data.json is damaged: KeyError\('units_scale'\)"):
        DataSpec.from_dict(d, "run/data.json")
