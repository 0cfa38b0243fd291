"""Shared test helpers: where the reference fixtures live, seeding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The project's shared/ folder: $MIMCAST_SHARED, or ../shared beside the checkout."""
    candidates = [os.environ.get("MIMCAST_SHARED"), REPO.parent / "shared", REPO / "shared"]
    for c in candidates:
        if c and (Path(c) / "fixtures").is_dir():
            return Path(c)
    raise FileNotFoundError(
        "the reference fixtures were not found: set MIMCAST_SHARED to the folder that holds "
        f"fixtures/ (looked in {[str(c) for c in candidates if c]})"
    )


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
