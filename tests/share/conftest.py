"""The tiny run and its Hub export that the tests of this folder share (trained once)."""

from __future__ import annotations

from pathlib import Path

import pytest

import mimcast
from tests.tiny import tiny_sets


@pytest.fixture(scope="package")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("hub") / "run"
    assert (
        mimcast.cli.main(["train", "--run-dir", str(run), "--steps", "2", "--set", *tiny_sets()])
        == 0
    )
    return run


@pytest.fixture(scope="package")
def exported(run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "tiny-mim"
    assert (
        mimcast.cli.main(["export", "--run-dir", str(run), "--format", "hub", "--output", str(out)])
        == 0
    )
    return out
