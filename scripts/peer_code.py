"""Bring a peer's model files out of a bare git mirror into a temporary folder, for the parity
fixture scripts (trajgru_fixture.py, cdna_fixture.py): the peer's code is run from there and
never copied into mimcast. `rewrites` edits lines of the extracted files (flat imports, a
smaller size), each edit required to apply, so that a changed upstream file fails loudly."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]  # the parity tests' run functions are imported from it


def extract(mirror: str, files: dict[str, str], rewrites: dict[str, list[tuple[str, str]]]) -> Path:
    """Write each mirror path `files[dest]` (at HEAD) to dest under a new temporary folder,
    with `rewrites[dest]` (old, new) applied; put the folder first on sys.path."""
    folder = Path(tempfile.mkdtemp(prefix="peer-"))
    for dest, src in files.items():
        text = subprocess.run(
            ["git", "-C", mirror, "show", f"HEAD:{src}"], check=True, capture_output=True, text=True
        ).stdout
        for old, new in rewrites.get(dest, []):
            if old not in text:
                raise SystemExit(f"{src}: expected line not found: {old!r}")
            text = text.replace(old, new)
        (folder / dest).parent.mkdir(parents=True, exist_ok=True)
        (folder / dest).write_text(text)
    sys.path.insert(0, str(folder))
    return folder


def head_commit(mirror: str) -> str:
    return subprocess.run(
        ["git", "-C", mirror, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def save(path: str, arrays: dict[str, np.ndarray]) -> None:
    np.savez_compressed(path, **arrays)
    print(f"wrote {path}: {Path(path).stat().st_size // 1024} KB, {len(arrays)} arrays")
