"""The baseline table of docs/footage.md from run folders: each run's test metrics.json.

    python scripts/footage_table.py RUN_DIR [RUN_DIR ...]

Prints one Markdown row per run: the model's test MSE per frame, persistence's and optical
flow's on the same windows, the ratios and the skill over the horizon, and the training time
that `mimcast train` printed ("done: ... (N s)") into RUN_DIR.log, where that file exists.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def row(run: Path) -> str:
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    model = m["mean"]["mse"]
    base = {name: b["mean"]["mse"] for name, b in m["baselines"].items()}
    p, f = base.get("persistence", float("nan")), base.get("flow", float("nan"))
    log = Path(f"{run}.log")
    took = re.search(r"done: .*\((\d+) s\)", log.read_text()) if log.exists() else None
    secs = float(took.group(1)) if took else float("nan")
    return (
        f"| {run.name} | {m['n_sequences']} | {model:.2f} | {p:.2f} | {f:.2f} | {model / p:.2f} | "
        f"{model / f:.2f} | {1 - model / p:+.2f} | {1 - model / f:+.2f} | {secs / 60:.1f} |"
    )


def main(runs: list[str]) -> None:
    print(
        "| run | test windows | model MSE | persistence | flow | model / persistence | "
        "model / flow | skill vs persistence | skill vs flow | train min |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(row(Path(r)))


if __name__ == "__main__":
    main(sys.argv[1:])
