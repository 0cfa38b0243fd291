"""The paper's studies reproduced end to end: `mimcast experiment NAME`.

A study trains each of its models with the same budget (config, steps, batch, data, seeds),
evaluates the best checkpoint of each on the test split and writes a report. Run folders go to
``<out>/runs/<model>-seed<k>/`` (default out: runs/experiments/NAME); only report.md, the plots
and a small results.json go to the report folder (default docs/experiments/NAME).

Re-running the same command skips every model/seed whose run folder holds a finished
evaluation and resumes an interrupted training, so a stopped study continues where it stopped.
A finished run of identical config in a sibling study's folder (e.g. table1's MIM for table2)
is reused instead of trained again, unless ``reuse=False``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mimcast.errors import ConfigError, MimcastError

DONE = "experiment.json"  # written into a run folder once trained and evaluated
METRICS = ("mse", "mae", "ssim", "ssim_legacy", "psnr")
HEADERS = {
    "mse": "MSE ↓",
    "mae": "MAE ↓",
    "ssim": "SSIM ↑",
    "ssim_legacy": "SSIM (legacy) ↑",
    "psnr": "PSNR ↑",
}
HIGHER_IS_BETTER = {"ssim", "ssim_legacy", "psnr"}
MODELS = {  # label -> (display name, model section overrides)
    "convlstm": ("ConvLSTM", {"name": "convlstm"}),
    "predrnn": ("PredRNN", {"name": "predrnn"}),
    "mim": ("MIM", {"name": "mim"}),
    "mim-no-mimn": ("MIM without MIM-N", {"name": "mim", "mim_n": False}),
    "mim-no-mims": ("MIM without MIM-S", {"name": "mim", "mim_s": False}),
}


@dataclass(frozen=True)
class Study:
    title: str
    data: str
    models: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]  # comparisons (first vs second)
    claim: str
    paper: dict[str, tuple[float, float, float]]  # label -> (SSIM, MSE, MAE) as published
    gates: bool = False


STUDIES: dict[str, Study] = {
    "table1": Study(
        "Table 1: ConvLSTM, PredRNN and MIM on Moving MNIST, 10 → 10",
        "mmnist",
        ("convlstm", "predrnn", "mim"),
        (("mim", "predrnn"), ("mim", "convlstm"), ("predrnn", "convlstm")),
        "MIM beats PredRNN and ConvLSTM on Moving MNIST (Table 1), and its error grows more "
        "slowly over the horizon (Figures 4–5).",
        {
            "convlstm": (0.707, 103.3, 182.9),
            "predrnn": (0.867, 56.8, 126.1),
            "mim": (0.874, 52.0, 116.5),
        },
    ),
    "table2": Study(
        "Table 2: MIM, MIM without MIM-N, MIM without MIM-S (Moving MNIST, 10 → 10)",
        "mmnist",
        ("mim", "mim-no-mimn", "mim-no-mims"),
        (("mim", "mim-no-mimn"), ("mim", "mim-no-mims"), ("mim-no-mimn", "mim-no-mims")),
        "Both MIM-N and MIM-S matter: removing either makes MIM worse (Table 2).",
        {
            "mim-no-mimn": (0.858, 54.4, 124.8),
            "mim-no-mims": (0.853, 55.7, 125.5),
            "mim": (0.874, 52.0, 116.5),
        },
    ),
    "table3": Study(
        "Table 3: PredRNN and MIM on Moving MNIST with acceleration, 10 → 10",
        "mmnist-accel",
        ("predrnn", "mim"),
        (("mim", "predrnn"),),
        "MIM's advantage grows when motion is non-stationary (Table 3; the paper's cells are "
        "empty, so there are no published numbers to compare with).",
        {},
    ),
    "forget-gates": Study(
        "Figure 7: forget-gate saturation of PredRNN and MIM (Moving MNIST, 10 → 10)",
        "mmnist",
        ("predrnn", "mim"),
        (("mim", "predrnn"),),
        "PredRNN's forget gates saturate (most values above 0.9) while MIM's fake forget gates "
        "(MIM-S output / C_{t-1}) are lower (about 60% above 0.9) and more volatile (Figure 7, "
        "measured on KTH in the paper).",
        {},
        gates=True,
    ),
}

CPU_STEPS = 500
PAPER_STEPS = 100_000
PRESETS: dict[str, dict[str, Any]] = {
    # Sized for a 2-core CPU (idle): ~1.2-1.4 s per MIM step, ~0.7-0.9 PredRNN, ~0.5 ConvLSTM, so
    # table1 (3 models x 2 seeds, 500 steps, plus validation and 512 test sequences each) takes
    # 45-55 minutes; table2 and forget-gates reuse table1's identical runs when they exist.
    "cpu": {
        "model": {
            "hidden": [32] * 4,
            "filter_size": 3,
            "patch_size": 4,
            "layer_norm": False,
            "variant": "paper",
        },
        "data": {"options": {"seq_len": 20, "context_len": 10}},
        "train": {
            "steps": CPU_STEPS,
            "batch_size": 8,
            "lr": 1e-3,
            "precision": "bf16-mixed",
            "device": "cpu",
            "val_sequences": 64,
        },
        "eval": {"split": "test", "num_sequences": 512, "batch_size": 16, "show": 2},
    },
    # Section 5: 4 layers x 64 channels, filter 5, layer norm, batch 8, Adam 1e-3, 100k steps.
    "paper": {
        "model": {
            "hidden": [64] * 4,
            "filter_size": 5,
            "patch_size": 4,
            "layer_norm": True,
            "variant": "paper",
        },
        "data": {"options": {"seq_len": 20, "context_len": 10}},
        "train": {
            "steps": PAPER_STEPS,
            "batch_size": 8,
            "lr": 1e-3,
            "precision": "32",
            "device": "cuda",
            "val_sequences": 256,
        },
        "eval": {"split": "test", "num_sequences": 0, "batch_size": 16, "show": 4},
    },
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def study_configs(
    name: str,
    preset: str = "cpu",
    seeds: tuple[int, ...] = (0, 1),
    steps: int | None = None,
    sets: tuple[str, ...] = (),
    data: str | None = None,
    data_root: str | None = None,
    device: str | None = None,
) -> list[tuple[str, int, Any]]:
    """(label, seed, RunConfig) of every run of a study; the budget is the same for all."""
    from mimcast.training.config import parse_set, resolve_config

    study = get_study(name)
    if preset not in PRESETS:
        raise ConfigError(f"unknown experiment preset {preset!r}; available: {', '.join(PRESETS)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must be distinct integers, got {list(seeds)}")
    base = copy.deepcopy(PRESETS[preset])
    n = steps if steps is not None else base["train"]["steps"]
    if n < 1:
        raise ConfigError(f"--steps must be >= 1, got {n}")
    every = max(1, min(n // 5, 5000))
    # Scheduled sampling reaches 0 at half the steps, as in the paper (eta -2e-5/step, 100k).
    base["train"].update(steps=n, eta_decay=2.0 / n, val_every=every, checkpoint_every=every)
    base["data"].update(name=data or study.data, root=data_root)
    user = parse_set(list(sets))
    out = []
    for label in study.models:
        layer = _merge(_merge(base, {"model": MODELS[label][1]}), user)
        if device is not None:
            layer["train"]["device"] = device
        for seed in seeds:
            cfg = resolve_config(None, None, _merge(layer, {"train": {"seed": int(seed)}}))
            out.append((label, int(seed), cfg))
    return out


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(STUDIES)}")
    return STUDIES[name]


# ------------------------------------------------------------------------------- runs
def _comparable(cfg) -> dict:
    d = cfg.to_dict()
    d["train"].pop("device", None)  # where it ran does not change what it is
    d["data"].pop("num_workers", None)
    return d


def _saved_config(run_dir: Path):
    from mimcast.training.runs import read_run_config

    try:
        return read_run_config(run_dir)
    except (MimcastError, OSError, yaml.YAMLError):
        return None


def _finished(run_dir: Path, cfg) -> bool:
    if not (run_dir / DONE).is_file():
        return False
    if not (run_dir / "eval" / cfg.eval.split / "metrics.json").is_file():
        return False
    saved = _saved_config(run_dir)
    return saved is not None and _comparable(saved) == _comparable(cfg)


def _candidates(out: Path) -> list[Path]:
    """Run folders of sibling studies (same parent folder), to reuse identical finished runs."""
    if not out.parent.is_dir():
        return []
    return sorted(
        r
        for sib in out.parent.iterdir()
        if sib.is_dir() and sib.resolve() != out.resolve()
        for r in (sib / "runs").glob("*")
        if r.is_dir()
    )


def _run_one(cfg, run_dir: Path, reuse: list[Path], log) -> dict[str, Any]:
    """Train and evaluate one model/seed unless done; returns the run's record."""
    from mimcast.evaluation import evaluate_run
    from mimcast.training.runs import train_run

    source, resumed = run_dir, False
    if not _finished(run_dir, cfg):
        found = next((r for r in reuse if _finished(r, cfg)), None)
        if found is not None:
            source = found
            log(f"reusing the finished identical run {found}")
        else:
            resume = overwrite = False
            if (run_dir / "config.yaml").is_file():
                saved = _saved_config(run_dir)
                if saved is None or _comparable(saved) != _comparable(cfg):
                    raise ConfigError(
                        f"{run_dir} holds a run of another config (budget, preset or --set "
                        "changed): give another --out or remove that folder"
                    )
                resume = (run_dir / "checkpoints" / "last.json").is_file()
                overwrite = not resume
                resumed = resume
            started = time.perf_counter()
            state = train_run(cfg, run_dir, resume=resume, overwrite=overwrite, log=log)
            if state.step < cfg.train.steps:
                raise MimcastError(
                    f"training of {run_dir} stopped at step {state.step} of {cfg.train.steps}; "
                    "run the same command again to resume the study"
                )
            trained = time.perf_counter() - started
            started = time.perf_counter()
            evaluate_run(run_dir, device=cfg.train.device, log=log)
            record = {
                "train_seconds": round(trained, 1),
                "eval_seconds": round(time.perf_counter() - started, 1),
                "resumed": resumed,
                "steps": state.step,
                "best_step": state.best_step,
                "parameters": _parameters(run_dir),
            }
            (run_dir / DONE).write_text(json.dumps(record, indent=1) + "\n")
    record = json.loads((source / DONE).read_text())
    metrics = json.loads((source / "eval" / cfg.eval.split / "metrics.json").read_text())
    return {
        **record,
        "run_dir": source.as_posix(),
        "reused": source != run_dir,
        "config": cfg.to_dict(),
        "n_sequences": metrics["n_sequences"],
        "mean": {k: metrics["mean"].get(k) for k in METRICS},
        "per_frame": {k: metrics["per_frame"].get(k) for k in METRICS},
    }


def _parameters(run_dir: Path) -> int:
    from mimcast.models import ModelConfig, build_model

    mcfg = ModelConfig.from_dict(json.loads((run_dir / "model.json").read_text()))
    return sum(p.numel() for p in build_model(mcfg).parameters())


def _gates(label: str, seed: int, run: dict, out: Path, log) -> dict[str, Any]:
    """Forget-gate statistics of a run over its test split, cached in <out>/gates/."""
    from mimcast.forget_gates import probe_run

    path = out / "gates" / f"{label}-seed{seed}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("run_dir") == run["run_dir"]:
            return cached["stats"]
    log(f"probing the forget gates of {run['run_dir']}")
    stats = probe_run(Path(run["run_dir"]), device=run["config"]["train"]["device"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean({"run_dir": run["run_dir"], "stats": stats})) + "\n")
    return json.loads(path.read_text())["stats"]


# ------------------------------------------------------------------------------- the study
def run_study(
    name: str,
    preset: str = "cpu",
    seeds: tuple[int, ...] = (0, 1),
    out: str | Path | None = None,
    report_dir: str | Path | None = None,
    steps: int | None = None,
    sets: tuple[str, ...] = (),
    data: str | None = None,
    data_root: str | None = None,
    device: str | None = None,
    reuse: bool = True,
    log=print,
) -> Path:
    """Run study `name` end to end and write its report; returns the path of report.md."""
    from mimcast import forget_gates as fg

    study = get_study(name)
    seeds = tuple(int(s) for s in seeds)
    out = Path(out) if out is not None else Path("runs/experiments") / name
    report_dir = Path(report_dir) if report_dir is not None else Path("docs/experiments") / name
    if out.resolve() == report_dir.resolve() or report_dir.resolve() in out.resolve().parents:
        raise ConfigError("--out (run folders) must not lie inside --report-dir")
    runs = study_configs(name, preset, seeds, steps, tuple(sets), data, data_root, device)
    command = _command(
        name, preset, seeds, out, report_dir, steps, sets, data, data_root, device, reuse
    )
    started, wall = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.perf_counter()
    siblings = _candidates(out) if reuse else []
    records: dict[str, dict[int, dict]] = {}
    for i, (label, seed, cfg) in enumerate(runs):
        log(f"== {name}: {MODELS[label][0]} seed {seed} ({i + 1}/{len(runs)}) ==")
        run = _run_one(cfg, out / "runs" / f"{label}-seed{seed}", siblings, log)
        records.setdefault(label, {})[seed] = run
    gates = {}
    if study.gates:
        for label, by_seed in records.items():
            per_seed = [_gates(label, s, r, out, log) for s, r in by_seed.items()]
            gates[label] = {"per_seed": per_seed, **fg.merge_seeds(per_seed)}
    results = {
        "study": name,
        "title": study.title,
        "claim": study.claim,
        "preset": preset,
        "seeds": list(seeds),
        "command": command,
        "commit": git_commit(),
        "machine": machine(runs[0][2].train.device),
        "started": started,
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "budget": budget(runs[0][2]),
        "models": {label: _aggregate(by_seed) for label, by_seed in records.items()},
        "paper": {k: dict(zip(("ssim", "mse", "mae"), v)) for k, v in study.paper.items()},
    }
    results["comparisons"] = [_compare(results["models"], a, b) for a, b in study.pairs]
    if gates:
        results["gates"] = {
            label: {k: v for k, v in g.items() if k != "per_seed"} for label, g in gates.items()
        }
    report_dir.mkdir(parents=True, exist_ok=True)
    pictures = _plots(results, report_dir)
    gate_lines = []
    if gates:
        merged = {MODELS[k][0]: g for k, g in gates.items()}
        pics = []
        for label, g in gates.items():
            p = fg.plot_histograms(
                g,
                f"{MODELS[label][0]}: gate values ({name})",
                report_dir / f"gates_hist_{label}.png",
            )
            pics.append(p.name)
        ctx = runs[0][2].data.options.get("context_len", 10)
        pics.append(fg.plot_share_over_time(merged, ctx, report_dir / "gates_share.png").name)
        gate_lines = fg.report_lines(merged, pics)
    (report_dir / "results.json").write_text(json.dumps(_clean(results), indent=1) + "\n")
    path = report_dir / "report.md"
    path.write_text("\n".join(_report(results, pictures, gate_lines)) + "\n")
    log(f"wrote {path}")
    return path


def _aggregate(by_seed: dict[int, dict]) -> dict[str, Any]:
    seeds = sorted(by_seed)
    out: dict[str, Any] = {"seeds": {str(s): by_seed[s] for s in seeds}, "mean": {}, "std": {}}
    for m in METRICS:
        vals = np.array([_num(by_seed[s]["mean"][m]) for s in seeds])
        out["mean"][m] = float(np.mean(vals))
        out["std"][m] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
    out["per_frame_mean"] = {
        m: np.mean([[_num(x) for x in by_seed[s]["per_frame"][m]] for s in seeds], 0).tolist()
        for m in METRICS
    }
    return out


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _compare(models: dict, a: str, b: str) -> dict[str, Any]:
    """Per metric: the two means, which is better and whether the seeds' ranges overlap."""
    out: dict[str, Any] = {"a": a, "b": b, "metrics": {}}
    for m in ("mse", "mae", "ssim"):
        sa = [_num(v["mean"][m]) for v in models[a]["seeds"].values()]
        sb = [_num(v["mean"][m]) for v in models[b]["seeds"].values()]
        ma, mb = float(np.mean(sa)), float(np.mean(sb))
        a_better = ma > mb if m in HIGHER_IS_BETTER else ma < mb
        if len(sa) < 2 or len(sb) < 2:
            verdict = "single-seed"
        elif max(sa) < min(sb) or max(sb) < min(sa):
            verdict = "exceeds"
        else:
            verdict = "within"
        out["metrics"][m] = {"a": ma, "b": mb, "a_better": a_better, "spread": verdict}
    fa, fb = models[a]["per_frame_mean"]["mse"], models[b]["per_frame_mean"]["mse"]
    out["mse_gap_first_last"] = [fb[0] - fa[0], fb[-1] - fa[-1]]  # b minus a: > 0 = a better
    return out


SPREAD = {
    "exceeds": "exceeds the spread",
    "within": "within the spread",
    "single-seed": "one seed: spread unknown",
}


def _sentence(c: dict) -> str:
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


def _plots(results: dict, report_dir: Path) -> list[str]:
    from mimcast import viz

    names = []
    for m in ("mse", "ssim"):
        curves = {MODELS[k][0]: {m: v["per_frame_mean"][m]} for k, v in results["models"].items()}
        n = len(results["seeds"])
        title = f"frame-wise {m.upper()} ({results['study']}, mean of {n} seed{'s' * (n > 1)})"
        viz.plot_framewise(curves, m, report_dir / f"framewise_{m}.png", title=title)
        names.append(f"framewise_{m}.png")
    return names


def _fmt(mean: float, std: float) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.4g}" + ("" if std is None or math.isnan(std) else f" ± {std:.2g}")


def _report(results: dict, pictures: list[str], gate_lines: list[str]) -> list[str]:
    models = results["models"]
    first = next(iter(next(iter(models.values()))["seeds"].values()))
    n_seq, seeds = first["n_sequences"], results["seeds"]
    lines = [
        f"# {results['study']}: {results['title']}",
        "",
        f"**The paper's claim.** {results['claim']}",
        "",
        f"**Budget (preset `{results['preset']}`, the same for every model).** "
        f"{results['budget']}. Seeds: {', '.join(map(str, seeds))} (model initialisation, "
        "batch order and sampling masks; the data are the same for every seed).",
        "",
        f"## Results: test split, {n_seq} sequences "
        + (f"(mean ± std over {len(seeds)} seeds)" if len(seeds) > 1 else "(one seed: no spread)"),
        "",
        "| model | parameters | " + " | ".join(HEADERS[m] for m in METRICS) + " |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for label, r in models.items():
        params = next(iter(r["seeds"].values()))["parameters"]
        cells = " | ".join(_fmt(r["mean"][m], r["std"][m]) for m in METRICS)
        lines.append(f"| {MODELS[label][0]} | {params / 1e6:.3f}M | {cells} |")
    lines += [
        "",
        "MSE and MAE are per frame, summed over a frame's pixels in [0, 1] and averaged over "
        "sequences and the predicted frames (the paper's convention); SSIM is computed with "
        "data range 1, SSIM (legacy) with the reference code's 7x7 window.",
        "",
        "### Comparisons",
        "",
        "A difference *exceeds the spread* when the per-seed values of the two models do not "
        "overlap (every seed of one is better than every seed of the other); otherwise it lies "
        "*within the spread* and this budget does not separate the two models.",
        "",
        *[_sentence(c) for c in results["comparisons"]],
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
            cells = " | ".join(f"{_num(s['mean'][m]):.4g}" for m in METRICS)
            where = f"`{s['run_dir']}`" + (" (reused)" if s["reused"] else "")
            lines.append(
                f"| {MODELS[label][0]} | {seed} | {cells} | {s['best_step']} | "
                f"{s['train_seconds'] / 60:.1f} min | {where} |"
            )
    if results["paper"]:
        lines += [
            "",
            "### The paper's numbers (64 channels, 100,000 steps: not comparable with a CPU "
            "budget)",
            "",
            "| model | SSIM | MSE | MAE |",
            "|---|---|---|---|",
            *[
                f"| {MODELS[k][0]} | {v['ssim']} | {v['mse']} | {v['mae']} |"
                for k, v in results["paper"].items()
            ],
        ]
    lines += ["", "## Frame-wise curves (Figures 4–5)", ""]
    lines += [f"![{Path(p).stem}]({p})" for p in pictures]
    for m in ("mse", "ssim"):
        names = [MODELS[k][0] for k in models]
        lines += [
            "",
            f"| frame | {' | '.join(f'{n} {m.upper()}' for n in names)} |",
            "|---" * (len(names) + 1) + "|",
        ]
        n_frames = len(next(iter(models.values()))["per_frame_mean"][m])
        for i in range(n_frames):
            vals = " | ".join(f"{r['per_frame_mean'][m][i]:.4g}" for r in models.values())
            lines.append(f"| {i + 1} | {vals} |")
    if gate_lines:
        lines += ["", *gate_lines]
    mach = results["machine"]
    lines += [
        "",
        "## Reproduce",
        "",
        "```",
        results["command"],
        "```",
        "",
        f"- commit: `{results['commit']}`",
        f"- machine: {mach['cpu']}, {mach['cores']} cores ({mach['torch_threads']} torch "
        f"threads), {mach.get('gpu') or 'no GPU'}; torch {mach['torch']}, Python "
        f"{mach['python']}, {mach['platform']}",
        f"- started {results['started']}; this invocation took "
        f"{results['wall_seconds'] / 60:.1f} min (runs already finished were skipped or reused)",
        "- every run's resolved config is in results.json and in its run folder's config.yaml; "
        "the config of the first run, from which the others differ only in `model.name`, "
        "`model.mim_n`/`model.mim_s` and `train.seed`:",
        "",
        "<details><summary>config</summary>",
        "",
        "```yaml",
        yaml.safe_dump(first["config"], sort_keys=False).rstrip(),
        "```",
        "",
        "</details>",
    ]
    return lines


# ------------------------------------------------------------------------------- provenance
def budget(cfg) -> str:
    m, t, d = cfg.model, cfg.train, cfg.data
    ctx = d.options.get("context_len", "?")
    total = d.options.get("seq_len", "?")
    n_eval = cfg.eval.num_sequences or "all"
    return (
        f"{len(m.hidden)} layers x {m.hidden[0]} channels, filter {m.filter_size}, patch "
        f"{m.patch_size}, layer norm {'on' if m.layer_norm else 'off'}; data {d.name} "
        f"({ctx} → {total if isinstance(total, str) else total - ctx}); {t.steps} steps of batch "
        f"{t.batch_size}, Adam lr {t.lr:g}, precision {t.precision}, scheduled sampling eta 1 → 0 "
        f"by step {math.ceil(t.eta_start / t.eta_decay)}; validation every {t.val_every} steps "
        f"on {t.val_sequences} sequences, the best checkpoint tested on {n_eval} "
        f"{cfg.eval.split} sequences"
    )


def _command(name, preset, seeds, out, report_dir, steps, sets, data, data_root, device, reuse):
    args = [
        "mimcast",
        "experiment",
        name,
        "--preset",
        preset,
        "--seeds",
        *map(str, seeds),
        "--out",
        Path(out).as_posix(),
        "--report-dir",
        Path(report_dir).as_posix(),
    ]
    for flag, value in (
        ("--steps", steps),
        ("--data", data),
        ("--data-root", data_root),
        ("--device", device),
    ):
        if value is not None:
            args += [flag, str(value)]
    if not reuse:
        args.append("--no-reuse")
    if sets:
        args += ["--set", *sets]
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


def machine(device: str = "cpu") -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    return {
        "cpu": cpu,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
    }


def _clean(x):
    """NaN and infinities to None, so results.json is strict JSON."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
