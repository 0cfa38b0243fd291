"""Shared test setup: where the reference fixtures live, seeding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


FIXTURES = REPO / "tests" / "fixtures"  # vendored: the suite needs no ../shared


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
