"""Reports of `mimcast experiment`: aggregation over seeds, comparisons, plots, provenance."""

from __future__ import annotations

import math
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from mimcast.evaluation import viz
from mimcast.machine import one_line
from mimcast.studies.catalogue import MODELS
from mimcast.studies.comparisons import HEADERS, METRICS, num, ordering_lines, sentence
from mimcast.studies.report_dir import ReportDir

if TYPE_CHECKING:
    from mimcast.studies.experiments import StudyRequest


def aggregate_seeds(by_seed: dict[int, dict]) -> dict[str, Any]:
    seeds = sorted(by_seed)
    out: dict[str, Any] = {"seeds": {str(s): by_seed[s] for s in seeds}, "mean": {}, "std": {}}
    for m in METRICS:
        vals = np.array([num(by_seed[s]["mean"][m]) for s in seeds])
        out["mean"][m] = float(np.mean(vals))
        out["std"][m] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
    out["per_frame_mean"] = {
        m: np.mean([[num(x) for x in by_seed[s]["per_frame"][m]] for s in seeds], 0).tolist()
        for m in METRICS
    }
    return out


def framewise_plots(results: dict, report: ReportDir) -> list[str]:
    names = []
    for m in ("mse", "ssim"):
        curves = {MODELS[k][0]: {m: v["per_frame_mean"][m]} for k, v in results["models"].items()}
        n = len(results["seeds"])
        title = f"frame-wise {m.upper()} ({results['study']}, mean of {n} seed{'s' * (n > 1)})"
        names.append(viz.plot_framewise(curves, m, report.curve(m), title=title).name)
    return names


def _channels(model: dict, base: dict) -> str:
    """A model's layer widths ("4 x 32" when every layer is as wide), and any filter, patch or
    layer norm that differ from the budget line's."""
    hidden = model["hidden"]
    size = f"{len(hidden)} x {hidden[0]}" if len(set(hidden)) == 1 else ", ".join(map(str, hidden))
    own = [f"{k.replace('_', ' ')} {_setting(model[k])}" for k in _OWN if model[k] != base[k]]
    return size + (f" ({', '.join(own)})" if own else "")


_OWN = ("filter_size", "patch_size", "layer_norm")


def _setting(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def _published(metric: str, value: float) -> str:
    """A published number with the decimals the paper prints (0.870, not 0.87)."""
    decimals = 3 if metric.startswith(("ssim", "mse@")) else 2 if metric == "psnr" else 1
    return f"{value:.{decimals}f}"


def _fmt(mean: float, std: float) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.4g}" + ("" if std is None or math.isnan(std) else f" ± {std:.2g}")


def report_lines(results: dict, pictures: list[str], gate_lines: list[str]) -> list[str]:
    """report.md of a study: claim, budget, results, comparisons, seeds, curves, provenance."""
    models = results["models"]
    first = next(iter(next(iter(models.values()))["seeds"].values()))
    lines = _summary_lines(results, first["n_sequences"])
    lines += _comparison_lines(results)
    lines += _seed_lines(models)
    lines += _paper_lines(results["paper"])
    lines += ordering_lines(results["paper_orderings"])
    lines += ["", "## Frame-wise curves (Figures 4–5)", ""]
    lines += [f"![{Path(p).stem}]({p})" for p in pictures]
    lines += _curve_tables(models)
    if gate_lines:
        lines += ["", *gate_lines]
    return lines + _reproduce_lines(results, first["config"])


def _summary_lines(results: dict, n_seq: int) -> list[str]:
    seeds = results["seeds"]
    spread = f"(mean ± std over {len(seeds)} seeds)" if len(seeds) > 1 else "(one seed: no spread)"
    lines = [
        f"# {results['study']}: {results['title']}",
        "",
        f"**The paper's claim.** {results['claim']}",
        "",
        f"**Budget (preset `{results['preset']}`, the same for every model).** "
        f"{results['budget']}. Seeds: {', '.join(map(str, seeds))} (model initialisation, "
        "batch order and sampling masks; the data are the same for every seed).",
        "",
        f"## Results: test split, {n_seq} sequences {spread}",
        "",
        "| model | channels | parameters | " + " | ".join(HEADERS[m] for m in METRICS) + " |",
        "|---" * (len(METRICS) + 3) + "|",
    ]
    subject = results["models"][results["subject"]]
    base = next(iter(subject["seeds"].values()))["config"]["model"]  # the budget line's
    for label, r in results["models"].items():
        first = next(iter(r["seeds"].values()))
        cells = " | ".join(_fmt(r["mean"][m], r["std"][m]) for m in METRICS)
        lines.append(
            f"| {MODELS[label][0]} | {_channels(first['config']['model'], base)} | "
            f"{first['parameters'] / 1e6:.3f}M | {cells} |"
        )
    return lines + [
        "",
        "MSE and MAE are per frame, summed over a frame's pixels in [0, 1] and averaged over "
        "sequences and the predicted frames (the paper's convention); SSIM is computed with "
        "data range 1, SSIM (legacy) with the reference code's 7x7 window.",
    ]


def _comparison_lines(results: dict) -> list[str]:
    return [
        "",
        "### Comparisons",
        "",
        "A difference *exceeds the spread* when the per-seed values of the two models do not "
        "overlap (every seed of one is better than every seed of the other); otherwise it lies "
        "*within the spread* and this budget does not separate the two models.",
        "",
        *[sentence(c) for c in results["comparisons"]],
    ]


def _seed_lines(models: dict) -> list[str]:
    lines = [
        "",
        "### Every seed",
        "",
        "| model | seed | "
        + " | ".join(HEADERS[m][:-2] for m in METRICS)
        + " | best step | train time | run folder |",
        "|---" * (len(METRICS) + 5) + "|",
    ]
    for label, r in models.items():
        for seed, s in r["seeds"].items():
            cells = " | ".join(f"{num(s['mean'][m]):.4g}" for m in METRICS)
            where = f"`{s['run_dir']}`" + (" (reused)" if s["reused"] else "")
            # a resumed run timed only its last part: say so rather than print a short time
            since = " since its last resume" if s.get("resumed") else ""
            lines.append(
                f"| {MODELS[label][0]} | {seed} | {cells} | {s['best_step']} | "
                f"{s['train_seconds'] / 60:.1f} min{since} | {where} |"
            )
    return lines


def _paper_lines(paper: dict) -> list[str]:
    if not paper:
        return []
    columns = list(dict.fromkeys(c for v in paper.values() for c in v))
    return [
        "",
        "### The paper's numbers (each model at its paper's size, trained to convergence on a "
        "GPU: not comparable with a CPU budget)",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
        *[
            f"| {MODELS[k][0]} | "
            + " | ".join(_published(c, v[c]) if c in v else "" for c in columns)
            + " |"
            for k, v in paper.items()
        ],
    ]


def _curve_tables(models: dict) -> list[str]:
    lines = []
    names = [MODELS[k][0] for k in models]
    for m in ("mse", "ssim"):
        lines += [
            "",
            f"| frame | {' | '.join(f'{n} {m.upper()}' for n in names)} |",
            "|---" * (len(names) + 1) + "|",
        ]
        n_frames = len(next(iter(models.values()))["per_frame_mean"][m])
        for i in range(n_frames):
            vals = " | ".join(f"{r['per_frame_mean'][m][i]:.4g}" for r in models.values())
            lines.append(f"| {i + 1} | {vals} |")
    return lines


def _reproduce_lines(results: dict, config: dict) -> list[str]:
    return [
        "",
        "## Reproduce",
        "",
        "```",
        results["command"],
        "```",
        "",
        f"- commit: `{results['commit']}`",
        f"- machine: {one_line(results['machine'])} ({results['machine']['torch_threads']} "
        f"torch threads), {results['machine']['platform']}",
        f"- started {results['started']}; this invocation took "
        f"{results['wall_seconds'] / 60:.1f} min (runs already finished were skipped or reused)",
        "- every run's resolved config is in results.json and in its run folder's config.yaml; "
        "the config of the first run, from which the others differ only in `model.name`, "
        "`model.mim_n`/`model.mim_s` and `train.seed`:",
        "",
        "<details><summary>config</summary>",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False).rstrip(),
        "```",
        "",
        "</details>",
    ]


# ------------------------------------------------------------------------------- provenance
def _frames(options: dict) -> str:
    ctx, total = options.get("context_len", "?"), options.get("seq_len", "?")
    return f"{ctx} → {total - ctx if isinstance(total, int) and isinstance(ctx, int) else '?'}"


def budget(cfg) -> str:
    m, t, d = cfg.model, cfg.train, cfg.data
    n_eval = cfg.eval.num_sequences or "all"
    frames = f"trained {_frames(d.options)}"
    if "seq_len" in d.eval_options:
        frames += f", tested {_frames({**d.options, **d.eval_options})}"
    subset = f", {d.options['stationarity']} half" if "stationarity" in d.options else ""
    return (
        f"each model's channels as in the table below, filter {m.filter_size}, patch "
        f"{m.patch_size}, layer norm {'on' if m.layer_norm else 'off'}; data {d.name}{subset} "
        f"({frames}); {t.steps} steps of batch "
        f"{t.batch_size}, Adam lr {t.lr:g}, precision {t.precision}, {_sampling(t.sampling)}; "
        f"validation every {t.val_every} steps "
        f"on {t.val_sequences} sequences, the best checkpoint tested on {n_eval} "
        f"{cfg.eval.split} sequences"
    )


def _sampling(s) -> str:
    if s.kind == "linear":
        end = math.ceil(s.eta_start / s.eta_decay) if s.eta_decay else "never"
        return f"scheduled sampling eta {s.eta_start:g} → 0 by step {end}"
    if s.kind == "reverse":
        return f"reverse scheduled sampling (s1 {s.reverse_s1}, s2 {s.reverse_s2})"
    return "no scheduled sampling"


def command_line(req: StudyRequest) -> str:
    """The `mimcast experiment` command that reruns this study."""
    args = ["mimcast", "experiment", req.name, "--preset", req.preset, "--seeds"]
    args += [*map(str, req.seeds), "--out", req.out_dir.as_posix()]
    args += ["--report-dir", req.report_path.as_posix()]
    for flag, value in (
        ("--steps", req.steps),
        ("--data", req.data),
        ("--data-root", req.data_root),
        ("--device", req.device),
    ):
        if value is not None:
            args += [flag, str(value)]
    if not req.reuse:
        args.append("--no-reuse")
    if req.sets:
        args += ["--set", *req.sets]
    return shlex.join(args)


def git_commit() -> str | None:
    """HEAD of the checkout mimcast runs from, else of the current folder; ' (dirty)' when
    tracked files differ from it; None outside git."""
    for where in (Path(__file__).resolve().parent, Path.cwd()):
        try:
            head = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
            )
            if head.returncode != 0:
                continue
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        return head.stdout.strip() + (" (dirty)" if dirty.stdout.strip() else "")
    return None


def clean_json(x):
    """NaN and infinities to None, so results.json is strict JSON."""
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
