"""The model against the trivial forecasts: each baseline's metrics on the same sequences, the
skill per lead time, and one plain line saying whether the model beats them.

``BaselineMetrics`` scores every chosen baseline with its own ``FrameMetrics`` (made like the
model's) over the batches the model is scored on, all against one ``Truth`` per batch (the
model's, where the caller passes it: the truth's part of the metrics is computed once); its
sums, and the count of sequences in which a method found no motion, all-reduce like
FrameMetrics' do, so sharded evaluations add up.
Skill at lead time k is ``1 - MSE_model[k] / MSE_baseline[k]`` (positive: the model is better;
0: as good; NaN where the baseline is exact); over the horizon it is ``1 - mean MSE_model /
mean MSE_baseline``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from mimcast.evaluation.baselines import Baseline
from mimcast.evaluation.metrics import FrameMetrics, Truth


class BaselineMetrics:
    """FrameMetrics of each baseline, updated with the context and truth the model sees."""

    def __init__(
        self,
        baselines: Sequence[Baseline],
        make_metrics: Callable[[], FrameMetrics],
        value_range: tuple[float, float],
    ) -> None:
        self.baselines = list(baselines)
        self.value_range = value_range
        self.metrics = {b.name: make_metrics() for b in self.baselines}
        self.no_motion = {b.name: torch.zeros(1, dtype=torch.float64) for b in self.baselines}

    @torch.no_grad()
    def update(self, context: Tensor, true: Tensor | Truth) -> None:
        """context (B, Tc, C, H, W), true (B, T, C, H, W) in model units or its ``Truth``
        (``FrameMetrics.prepare`` of metrics made like these)."""
        if not self.baselines:
            return
        if isinstance(true, Tensor):
            true = self.metrics[self.baselines[0].name].prepare(true)
        for b in self.baselines:
            forecast = b.forecast(context, true.frames.shape[1], self.value_range)
            self.metrics[b.name].update(forecast.frames, true)
            self.no_motion[b.name] += float(forecast.no_motion.sum())

    def reduce(self, fn: Callable[[Tensor], Any]) -> None:
        """Apply ``fn`` (an all-reduce) to every sum, in the same order on every process."""
        for name in sorted(self.metrics):
            self.metrics[name].reduce(fn)
            fn(self.no_motion[name])

    def compute(self) -> dict[str, dict]:
        """{name: FrameMetrics' result with "label" and "no_motion_sequences"}."""
        out = {}
        for b in self.baselines:
            result = self.metrics[b.name].compute()
            result["label"] = b.label
            result["no_motion_sequences"] = int(self.no_motion[b.name].item())
            out[b.name] = result
        return out


def _skill(model_mse: float, baseline_mse: float) -> float:
    return 1.0 - model_mse / baseline_mse if baseline_mse > 0 else math.nan


def _no_motion_note(b: dict) -> str | None:
    n, total = b["no_motion_sequences"], b["n_sequences"]
    if n == 0:
        return None
    if n == total:
        return (f"{b['label']} found no motion in any of the {total} sequences: its scores are "
                "persistence's")  # fmt: skip
    return f"{b['label']} found no motion in {n} of {total} sequences (there it is persistence)"


def compare(model: dict, baselines: dict[str, dict]) -> dict[str, dict]:
    """Each baseline's result with its skill per lead time ("skill"), over the horizon
    ("skill_mean") and a note where its method found no motion ("note")."""
    out = {}
    mse = model["per_frame"]["mse"]
    for name, b in baselines.items():
        skill = [_skill(m, x) for m, x in zip(mse, b["per_frame"]["mse"], strict=True)]
        entry = {**b, "skill": skill, "skill_mean": _skill(model["mean"]["mse"], b["mean"]["mse"])}
        note = _no_motion_note(b)
        if note:
            entry["note"] = note
        out[name] = entry
    return out


def _standing(skill: float) -> str:
    """How the model stands against a baseline of this skill ("" where it cannot be said)."""
    if math.isnan(skill):
        return ""
    return "beats" if skill > 0 else "is WORSE than" if skill < 0 else "ties with"


def verdict(baselines: dict[str, dict]) -> str:
    """One plain line: does the model beat each baseline over the horizon?"""
    groups: dict[str, list[str]] = {"beats": [], "is WORSE than": [], "ties with": [], "": []}
    for b in baselines.values():
        s = b["skill_mean"]
        key = _standing(s)
        groups[key].append(f"{b['label']} (skill {s:.3g})" if key else b["label"])
    parts = [f"{k} {' and '.join(v)}" for k, v in groups.items() if k and v]
    line = "the model " + " but ".join(parts) + " over the horizon" if parts else "the model"
    if groups[""]:
        exact = " and ".join(groups[""])
        line += f"{'; it' if parts else ''} cannot be compared with {exact} (an exact forecast)"
    return line


def skill_rows(result: dict) -> tuple[list[str], list[list[float]]]:
    """The table of the model's MSE beside each baseline's and the skill: header, then one row
    per lead time and a final row over the horizon (the means)."""
    baselines = result["baselines"]
    header = ["mse model"]
    for b in baselines.values():
        header += [f"mse {b['label']}", f"skill vs {b['label']}"]
    rows = []
    for i in range(result["n_frames"]):
        row = [result["per_frame"]["mse"][i]]
        for b in baselines.values():
            row += [b["per_frame"]["mse"][i], b["skill"][i]]
        rows.append(row)
    means = [result["mean"]["mse"]]
    for b in baselines.values():
        means += [b["mean"]["mse"], b["skill_mean"]]
    return header, [*rows, means]


def format_skill_table(result: dict) -> str:
    """The skill table as fixed-width text under a title, the notes and the verdict under it."""
    header, rows = skill_rows(result)
    widths = [max(10, len(h) + 2) for h in header]
    head = f"{'frame':>6}" + "".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True))
    rule = "-" * len(head)
    lines = ["against the trivial forecasts (skill = 1 - MSE model / MSE baseline):", head, rule]
    for i, row in enumerate(rows):
        label = "mean" if i == len(rows) - 1 else str(i + 1)
        if label == "mean":
            lines.append(rule)
        cells = "".join(f"{v:>{w}.4g}" for v, w in zip(row, widths, strict=True))
        lines.append(f"{label:>6}{cells}")
    return "\n".join([*lines, *baseline_notes(result), result["verdict"]])


def baseline_notes(result: dict) -> list[str]:
    """The lines that qualify the comparison: baselines left out, methods that found no
    motion."""
    left_out = [f"{name} left out: {why}" for name, why in result["baselines_left_out"].items()]
    return left_out + [b["note"] for b in result["baselines"].values() if "note" in b]


def add_baselines(result: dict, scores: dict[str, dict], left_out: dict[str, str]) -> dict:
    """The model's FrameMetrics result with the baselines' ("baselines"), those left out
    ("baselines_left_out") and the verdict line ("verdict"); unchanged without baselines."""
    if scores:
        result["baselines"] = compare(result, scores)
        result["baselines_left_out"] = dict(left_out)
        result["verdict"] = verdict(result["baselines"])
    return result
