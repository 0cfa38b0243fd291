"""How a study compares two models: the spread rule over seeds, the sentence per pair, and
whether the orderings the paper published hold at the budget the study ran."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mimcast.studies.catalogue import MODELS

METRICS = ("mse", "mae", "ssim", "ssim_legacy", "psnr")
HEADERS = {
    "mse": "MSE ↓",
    "mae": "MAE ↓",
    "ssim": "SSIM ↑",
    "ssim_legacy": "SSIM (legacy) ↑",
    "psnr": "PSNR ↑",
}
HIGHER_IS_BETTER = {"ssim", "ssim_legacy", "psnr"}


def num(x) -> float:
    return math.nan if x is None else float(x)


def spread_verdict(sa, sb) -> str:
    """ "exceeds" when the per-seed values of two models do not overlap, else "within"
    ("single-seed" when either has fewer than two seeds): the rule every report uses."""
    if len(sa) < 2 or len(sb) < 2:
        return "single-seed"
    return "exceeds" if max(sa) < min(sb) or max(sb) < min(sa) else "within"


def compare_models(models: dict, a: str, b: str) -> dict[str, Any]:
    """Per metric: the two means, which is better and whether the seeds' ranges overlap."""
    out: dict[str, Any] = {"a": a, "b": b, "metrics": {}}
    for m in ("mse", "mae", "ssim"):
        sa = [num(v["mean"][m]) for v in models[a]["seeds"].values()]
        sb = [num(v["mean"][m]) for v in models[b]["seeds"].values()]
        ma, mb = float(np.mean(sa)), float(np.mean(sb))
        a_better = ma > mb if m in HIGHER_IS_BETTER else ma < mb
        verdict = spread_verdict(sa, sb)
        out["metrics"][m] = {"a": ma, "b": mb, "a_better": a_better, "spread": verdict}
    fa, fb = models[a]["per_frame_mean"]["mse"], models[b]["per_frame_mean"]["mse"]
    out["mse_gap_first_last"] = [fb[0] - fa[0], fb[-1] - fa[-1]]  # b minus a: > 0 = a better
    return out


SPREAD = {
    "exceeds": "exceeds the spread",
    "within": "within the spread",
    "single-seed": "one seed: spread unknown",
}


def sentence(c: dict) -> str:
    a, b = MODELS[c["a"]][0], MODELS[c["b"]][0]
    parts = []
    for m, r in c["metrics"].items():
        better = a if r["a_better"] else b
        parts.append(
            f"{HEADERS[m][:-2]} {r['a']:.4g} vs {r['b']:.4g} ({better} better, "
            f"{SPREAD[r['spread']]})"
        )
    g0, g1 = c["mse_gap_first_last"]
    lead, other = (a, b) if g1 > 0 else (b, a)
    trend = "grows" if abs(g1) > abs(g0) and g0 * g1 >= 0 else "does not grow"
    return (
        f"- **{a} vs {b}**: " + "; ".join(parts) + f". MSE of {b} minus {a}: {g0:+.3g} at the "
        f"first predicted frame, {g1:+.3g} at the last, so {lead}'s lead over {other} {trend} "
        "over the horizon."
    )


ORDER = {  # (the paper's order holds here, spread) -> what the report says
    (True, "exceeds"): "holds",
    (True, "within"): "same order, within the spread",
    (True, "single-seed"): "same order (one seed)",
    (False, "exceeds"): "reversed",
    (False, "within"): "reversed, within the spread",
    (False, "single-seed"): "reversed (one seed)",
}


def paper_orderings(comparisons: list[dict], paper: dict) -> list[dict[str, Any]]:
    """For every compared pair with published numbers for both models, per metric published
    for both (and compared here): which model the paper has better, whether that order holds
    at this budget, and whether the seeds separate the two (the spread rule)."""
    out = []
    for c in comparisons:
        pa, pb = paper.get(c["a"], {}), paper.get(c["b"], {})
        metrics = {}
        for m, r in c["metrics"].items():
            if m not in pa or m not in pb or pa[m] == pb[m]:
                continue  # not published for both, or a tie in the paper
            paper_a = pa[m] > pb[m] if m in HIGHER_IS_BETTER else pa[m] < pb[m]
            holds = paper_a == r["a_better"]
            metrics[m] = {
                "paper_better": c["a"] if paper_a else c["b"],
                "holds": holds,
                "spread": r["spread"],
                "verdict": ORDER[holds, r["spread"]],
            }
        if metrics:
            out.append({"a": c["a"], "b": c["b"], "metrics": metrics})
    return out


def ordering_lines(orderings: list[dict]) -> list[str]:
    """The report's section on the paper's orderings: a table, then the count of each verdict."""
    if not orderings:
        return []
    metrics = list(dict.fromkeys(m for o in orderings for m in o["metrics"]))
    lines = [
        "",
        "### The paper's orderings at this budget",
        "",
        "Each cell: the model the paper has better on that metric, then whether this budget "
        "puts them in the same order (*holds*: beyond the spread) or not.",
        "",
        "| pair | " + " | ".join(HEADERS[m][:-2] for m in metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    counts: dict[str, int] = {}
    for o in orderings:
        cells = []
        for m in metrics:
            r = o["metrics"].get(m)
            if r is not None:
                counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
            cells.append("" if r is None else f"{MODELS[r['paper_better']][0]}: {r['verdict']}")
        lines.append(f"| {MODELS[o['a']][0]} vs {MODELS[o['b']][0]} | " + " | ".join(cells) + " |")
    tally = "; ".join(f"{v}: {counts[v]}" for v in ORDER.values() if v in counts)
    return [*lines, "", f"Of {sum(counts.values())} published orderings compared: {tally}."]
