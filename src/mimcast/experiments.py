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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mimcast.errors import ConfigError, MimcastError
from mimcast.experiment_report import (
    METRICS,
    MODELS,
    aggregate_seeds,
    budget,
    clean_json,
    command_line,
    compare_models,
    framewise_plots,
    git_commit,
    machine,
    report_lines,
)

DONE = "experiment.json"  # written into a run folder once trained and evaluated


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
    path.write_text(json.dumps(clean_json({"run_dir": run["run_dir"], "stats": stats})) + "\n")
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
    command = command_line(
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
        "models": {label: aggregate_seeds(by_seed) for label, by_seed in records.items()},
        "paper": {k: dict(zip(("ssim", "mse", "mae"), v)) for k, v in study.paper.items()},
    }
    results["comparisons"] = [compare_models(results["models"], a, b) for a, b in study.pairs]
    if gates:
        results["gates"] = {
            label: {k: v for k, v in g.items() if k != "per_seed"} for label, g in gates.items()
        }
    report_dir.mkdir(parents=True, exist_ok=True)
    pictures = framewise_plots(results, report_dir)
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
    (report_dir / "results.json").write_text(json.dumps(clean_json(results), indent=1) + "\n")
    path = report_dir / "report.md"
    path.write_text("\n".join(report_lines(results, pictures, gate_lines)) + "\n")
    log(f"wrote {path}")
    return path
