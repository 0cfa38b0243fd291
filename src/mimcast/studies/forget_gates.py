"""Forget-gate saturation (the paper's Figure 7): how often gate values exceed 0.9.

A `GateStats` object is passed as the `probe` of `Forecaster.forward`. Cells report
("forget", f_t) (ConvLSTM, ST-LSTM: PredRNN's layers and MIM's first layer) or
("fake_forget", MIM-S output / C_{t-1}) (MIM blocks; NaN where |C_{t-1}| < 1e-3). Per layer it
accumulates counts only, never the values: the values seen and ignored (NaN), those above the
threshold, per time step too, and a histogram on fixed bins (values clipped into its range).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from mimcast.evaluation import viz
from mimcast.runs.datasets import build_splits
from mimcast.runs.predict import load_run_model
from mimcast.runs.rundir import RunDir
from mimcast.studies.comparisons import spread_verdict
from mimcast.training.distributed import init_from_env

THRESHOLD = 0.9
HIST_RANGE = (-0.5, 1.5)
HIST_BINS = 40  # 0.05 wide: 0.9 is a bin edge
SPREAD_WORDS = {
    "single-seed": "one seed only, so the spread over seeds is unknown",
    "exceeds": "the per-seed ranges do not overlap: the difference exceeds the spread",
    "within": "the per-seed ranges overlap: the difference lies within the spread",
}


class GateStats:
    """Probe `(t, layer, name, value)` accumulating per-layer counts of gate values."""

    def __init__(
        self,
        threshold: float = THRESHOLD,
        bins: int = HIST_BINS,
        value_range: tuple[float, float] = HIST_RANGE,
    ) -> None:
        self.threshold = float(threshold)
        self.bins = int(bins)
        self.lo, self.hi = (float(v) for v in value_range)
        self.layers: dict[int, dict[str, Any]] = {}

    def __call__(self, t: int, layer: int, name: str, value: Tensor) -> None:
        v = value.detach().float()
        finite = torch.isfinite(v)
        valid = v[finite]
        entry = self.layers.get(layer)
        if entry is None:
            entry = {
                "gate": name,
                "hist": torch.zeros(self.bins, dtype=torch.float64, device=v.device),
                "steps": {},  # t -> float64 tensor [values, valid, above]
            }
            self.layers[layer] = entry
        counts = torch.stack(
            [
                torch.tensor(float(v.numel()), dtype=torch.float64, device=v.device),
                finite.sum().double(),
                (valid > self.threshold).sum().double(),
            ]
        )
        if t in entry["steps"]:
            entry["steps"][t] += counts
        else:
            entry["steps"][t] = counts
        if valid.numel():
            hist = torch.histc(valid.clamp(self.lo, self.hi), self.bins, self.lo, self.hi)
            entry["hist"] += hist.double()

    def summary(self) -> dict[str, Any]:
        """Per layer: gate name, counts, share above the threshold (overall and per step),
        volatility (std over time steps of the per-step share) and the histogram."""
        edges = np.linspace(self.lo, self.hi, self.bins + 1)
        out: dict[str, Any] = {
            "threshold": self.threshold,
            "bin_edges": [float(e) for e in edges],
            "layers": {},
        }
        for layer in sorted(self.layers):
            entry = self.layers[layer]
            ts = sorted(entry["steps"])
            steps = np.array([entry["steps"][t].cpu().numpy() for t in ts])  # (T, 3)
            total, valid, above = steps.sum(0)
            per_step = [float(a / v) if v > 0 else math.nan for _, v, a in steps]
            finite_steps = [s for s in per_step if not math.isnan(s)]
            out["layers"][str(layer)] = {
                "gate": entry["gate"],
                "n_values": int(total),
                "n_ignored": int(total - valid),
                "n_above": int(above),
                "share_above": float(above / valid) if valid > 0 else math.nan,
                "per_step_share": per_step,
                "volatility": float(np.std(finite_steps)) if finite_steps else math.nan,
                "hist": [int(c) for c in entry["hist"].cpu().numpy()],
            }
        return out


def probe_run(
    run_dir: Path,
    which: str = "best",
    device: str = "cpu",
    num_sequences: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Gate statistics of a trained run over its evaluation split (free-running, float32)."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    device = init_from_env(device)
    split = cfg.eval.split
    data = build_splits(cfg, (split,))[split]
    n = cfg.eval.num_sequences if num_sequences is None else num_sequences
    n = len(data) if n <= 0 else min(n, len(data))
    loader = DataLoader(Subset(data, range(n)), batch_size=batch_size or cfg.eval.batch_size)
    model, _ = load_run_model(run, which, device)
    context_len = int(data.context_len)
    stats = GateStats()
    with torch.no_grad():
        for frames in loader:
            model(frames.to(device), context_len, probe=stats)
    out = stats.summary()
    out.update(split=split, n_sequences=n, context_len=context_len)
    return out


def merge_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Per layer: mean and std over seeds of the share and volatility, histograms summed."""
    layers: dict[str, Any] = {}
    for key in per_seed[0]["layers"]:
        items = [s["layers"][key] for s in per_seed]
        shares = [i["share_above"] for i in items]
        vols = [i["volatility"] for i in items]
        layers[key] = {
            "gate": items[0]["gate"],
            "share_above": _mean_std(shares),
            "volatility": _mean_std(vols),
            "ignored_share": _mean_std([i["n_ignored"] / max(i["n_values"], 1) for i in items]),
            "per_step_share": _nanmean_columns(
                [[_f(x) for x in i["per_step_share"]] for i in items]
            ),
            "hist": np.sum([i["hist"] for i in items], axis=0).tolist(),
        }
    by_gate: dict[str, list[float]] = {}  # gate -> per seed, the mean share over its layers
    for gate in dict.fromkeys(layer["gate"] for layer in layers.values()):
        keys = [k for k, layer in layers.items() if layer["gate"] == gate]
        by_gate[gate] = [
            float(np.nanmean([_f(s["layers"][k]["share_above"]) for k in keys])) for s in per_seed
        ]
    return {"bin_edges": per_seed[0]["bin_edges"], "layers": layers, "seed_share": by_gate}


def _nanmean_columns(rows: list[list[float]]) -> list[float]:
    a = np.array(rows, dtype=np.float64)
    n = np.isfinite(a).sum(0)
    total = np.where(np.isfinite(a), a, 0.0).sum(0)
    return [float(t / k) if k else math.nan for t, k in zip(total, n)]


def _f(x: float | None) -> float:
    return math.nan if x is None else float(x)  # None: NaN read back from JSON


def _mean_std(values: list[float | None]) -> dict[str, float]:
    a = np.array([_f(v) for v in values], dtype=np.float64)
    return {
        "mean": float(np.nanmean(a)) if np.isfinite(a).any() else math.nan,
        "std": float(np.nanstd(a, ddof=1)) if np.isfinite(a).sum() > 1 else math.nan,
    }


def plot_histograms(merged: dict[str, Any], title: str, path: Path, dpi: int = 110) -> Path:
    """One panel per layer: the distribution of gate values, with the threshold marked."""
    layers = merged["layers"]
    edges = np.array(merged["bin_edges"])
    fig = viz.figure((3.2 * len(layers), 3.0))
    axes = fig.subplots(1, len(layers), squeeze=False)[0]
    for ax, (key, layer) in zip(axes, layers.items()):
        counts = np.array(layer["hist"], dtype=np.float64)
        share = counts / counts.sum() if counts.sum() > 0 else counts
        ax.bar(edges[:-1], share, width=np.diff(edges), align="edge", color="tab:blue")
        ax.axvline(THRESHOLD, color="tab:red", linestyle="--", linewidth=1)
        s = layer["share_above"]["mean"]
        ax.set_title(f"layer {key} ({layer['gate']}): {100 * s:.0f}% > {THRESHOLD}", fontsize=9)
        ax.set_xlabel("value (clipped)")
    axes[0].set_ylabel("share of values")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return viz.save_figure(fig, path, dpi)


def plot_share_over_time(
    merged_by_model: dict[str, dict[str, Any]], context_len: int, path: Path, dpi: int = 110
) -> Path:
    """Share of values above the threshold at each time step, per model and layer (Figure 7)."""
    fig = viz.figure((7, 4))
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for i, (label, merged) in enumerate(merged_by_model.items()):
        for key, layer in merged["layers"].items():
            ys = np.array(layer["per_step_share"]) * 100
            ax.plot(
                range(1, len(ys) + 1),
                ys,
                styles[int(key) % len(styles)],
                color=f"C{i}",
                label=f"{label} layer {key} ({layer['gate']})",
            )
    ax.axvline(context_len + 0.5, color="gray", linewidth=0.8)  # step t+1 reads frame t
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("time step (input frame; steps after the line are fed predictions)")
    ax.set_ylabel(f"% of values > {THRESHOLD}")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return viz.save_figure(fig, path, dpi)


def report_lines(merged_by_model: dict[str, dict[str, Any]], pictures: list[str]) -> list[str]:
    """The report's section: the per-layer table, a plain comparison and the pictures."""
    lines = [
        "## Forget gates",
        "",
        f"Share of gate values above {THRESHOLD} over the test set (best checkpoint, float32, "
        "free-running, all time steps; NaN "
        "fake-forget values where |C_{t-1}| < 1e-3 are ignored), mean ± std over seeds. "
        "Volatility: the standard deviation over time steps of the per-step share.",
        "",
        f"| model | layer | gate | share > {THRESHOLD} | volatility | ignored (NaN) |",
        "|---|---|---|---|---|---|",
    ]
    for label, merged in merged_by_model.items():
        for key, layer in merged["layers"].items():
            lines.append(
                f"| {label} | {key} | {layer['gate']} | {_pct(layer['share_above'])} | "
                f"{_pct(layer['volatility'])} | {_pct(layer['ignored_share'])} |"
            )
    lines += ["", *_comparison(merged_by_model), ""]
    lines += [f"![{Path(p).stem}]({p})" for p in pictures]
    return lines


def _pct(ms: dict[str, float]) -> str:
    m, s = ms["mean"], ms["std"]
    if math.isnan(m):
        return "n/a"
    return f"{100 * m:.1f}%" + ("" if math.isnan(s) else f" ± {100 * s:.1f}")


def _comparison(merged_by_model: dict[str, dict[str, Any]]) -> list[str]:
    """A sentence per model (layer-averaged share per gate kind) and per pair of models."""
    out = []
    main: dict[str, tuple[str, list[float]]] = {}
    for label, merged in merged_by_model.items():
        parts = []
        for gate, seeds in merged["seed_share"].items():
            n = sum(layer["gate"] == gate for layer in merged["layers"].values())
            parts.append(
                f"{100 * np.mean(seeds):.1f}% of its {gate.replace('_', ' ')} values "
                f"(mean over {n} layer{'s' if n > 1 else ''}; seeds: "
                + ", ".join(f"{100 * s:.1f}%" for s in seeds)
                + ")"
            )
        out.append(f"- {label}: {' and '.join(parts)} lie above {THRESHOLD}.")
        gate = "fake_forget" if "fake_forget" in merged["seed_share"] else "forget"
        main[label] = (gate, merged["seed_share"][gate])
    labels = list(main)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            (ga, sa), (gb, sb) = main[a], main[b]
            verdict = SPREAD_WORDS[spread_verdict(sa, sb)]
            out.append(
                f"- {a} ({ga.replace('_', ' ')}) vs {b} ({gb.replace('_', ' ')}): "
                f"{100 * np.mean(sa):.1f}% vs {100 * np.mean(sb):.1f}% above {THRESHOLD}; "
                f"{verdict}."
            )
    return out + _against_paper(main)


def _against_paper(main: dict[str, tuple[str, list[float]]]) -> list[str]:
    """Say plainly whether the two claims of Figure 7 hold in this measurement."""
    forget = [(k, np.mean(s)) for k, (g, s) in main.items() if g == "forget"]
    fake = [(k, np.mean(s)) for k, (g, s) in main.items() if g == "fake_forget"]
    out = []
    for label, share in forget:
        held = "holds" if share > 0.5 else "does not hold"
        out.append(
            f"- **Against the paper:** the claim that {label}'s forget gates saturate (most "
            f"values above {THRESHOLD}) {held} here: {100 * share:.1f}% are."
        )
        for other, fake_share in fake:
            lower = fake_share < share
            out.append(
                f"- **Against the paper:** the claim that {other}'s fake forget values lie above "
                f"{THRESHOLD} less often than {label}'s forget values "
                f"{'holds' if lower else 'does not hold'} here ({100 * fake_share:.1f}% against "
                f"{100 * share:.1f}%)."
            )
    return out
