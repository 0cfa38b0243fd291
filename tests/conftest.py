"""Shared test setup: where the reference fixtures live, seeding, the device to test on.

`python -m pytest --device cuda` runs the tests that take the `device` fixture on a GPU
(scripts/gpu_check.sh does); the default is the CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"  # vendored: the suite needs no ../shared


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="device of the device-aware tests")


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    d = torch.device(request.config.getoption("--device"))
    if d.type == "cuda" and not torch.cuda.is_available():
        pytest.fail("--device cuda was asked for, but there is no CUDA device")
    return d


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch) -> None:
    """Decoded videos are cached under a temporary folder, not the user's ~/.cache."""
    monkeypatch.setenv("MIMCAST_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
