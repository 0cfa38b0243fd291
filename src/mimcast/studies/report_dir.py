"""A study's report folder: mimcast's own, marked, holding only the files mimcast writes there.

    .mimcast-report.json   the marker (format, version, time of creation)
    report.md, results.json, framewise_<metric>.png, gates_hist_<model>.png, gates_share.png

A folder that exists, is not empty and has no marker (the user's, or published docs copied in
by hand) is refused before the study runs; in a marked folder only these files are replaced.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mimcast.errors import ConfigError
from mimcast.fs import atomic_write, has_marker, write_marker

MARKER_FORMAT = "mimcast-report-1"
_OWNED = re.compile(
    r"report\.md|results\.json|framewise_\w+\.png|gates_hist_[\w-]+\.png|gates_share\.png"
)


class ReportDir:
    MARKER = ".mimcast-report.json"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.report = self.path / "report.md"
        self.results = self.path / "results.json"
        self.gates_share = self.path / "gates_share.png"

    def curve(self, metric: str) -> Path:
        return self.path / f"framewise_{metric}.png"

    def gates_hist(self, label: str) -> Path:
        return self.path / f"gates_hist_{label}.png"

    def is_report(self) -> bool:
        return has_marker(self.path / self.MARKER, MARKER_FORMAT)

    def check_usable(self) -> None:
        """Refuse a folder mimcast does not own, or one that holds files it did not write."""
        p = self.path
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            raise ConfigError(f"report folder {p} is not a folder")
        if not p.is_dir() or not any(p.iterdir()):
            return
        if not self.is_report():
            raise ConfigError(
                f"report folder {p} is not empty and not a mimcast report (no {self.MARKER}): "
                "choose another --report-dir"
            )
        foreign = [
            c.name
            for c in p.iterdir()
            if c.name != self.MARKER and (c.is_symlink() or not _OWNED.fullmatch(c.name))
        ]
        if foreign:
            raise ConfigError(
                f"report folder {p} holds files mimcast did not write "
                f"({', '.join(sorted(foreign)[:3])}): move them away first"
            )

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.is_report():
            write_marker(self.path / self.MARKER, MARKER_FORMAT)

    def write_results(self, results: dict) -> None:
        atomic_write(self.results, json.dumps(results, indent=1) + "\n")

    def write_report(self, text: str) -> Path:
        atomic_write(self.report, text)
        return self.report
