"""The paper's studies reproduced end to end: `mimcast experiment NAME`.

A study trains each of its models with the same budget (preset, steps, batch, data, seeds),
evaluates the best checkpoint of each on the test split and writes a report. Run folders go to
``<out>/runs/<model>-seed<k>/`` (default out: runs/experiments/NAME); report.md, the plots and
results.json go to the report folder (default <out>/report), which mimcast owns: it refuses a
folder that holds anything else.

Re-running the same command skips every model/seed whose run folder holds a finished
evaluation and resumes an interrupted training, so a stopped study continues where it stopped.
A finished run of identical config in a sibling study's folder (e.g. table1's MIM for table2)
is reused instead of trained again, unless ``reuse=False``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimcast.errors import ConfigError, MimcastError
from mimcast.fs import atomic_write_json
from mimcast.machine import describe
from mimcast.models import build_model
from mimcast.runs.evaluate import evaluate_run
from mimcast.runs.rundir import RunDir
from mimcast.runs.train import train_run
from mimcast.settings import merge
from mimcast.studies import forget_gates as fg
from mimcast.studies.catalogue import MODELS, RECIPES, SIZES
from mimcast.studies.comparisons import METRICS, compare_models, paper_orderings
from mimcast.studies.report import (
    aggregate_seeds,
    budget,
    clean_json,
    command_line,
    framewise_plots,
    git_commit,
    report_lines,
)
from mimcast.studies.report_dir import ReportDir
from mimcast.studies.tables import STUDIES, Study
from mimcast.training.config import RunConfig, parse_set, resolve_config
from mimcast.training.distributed import init_from_env
from mimcast.training.presets import PRESETS

STUDY_PRESETS = ("cpu", "paper")


@dataclass(frozen=True)
class StudyRequest:
    """Everything `mimcast experiment` was asked: it names the runs and the report."""

    name: str
    preset: str = "cpu"
    seeds: tuple[int, ...] = (0, 1)
    out: Path | None = None
    report_dir: Path | None = None
    steps: int | None = None
    sets: tuple[str, ...] = ()
    data: str | None = None
    data_root: str | None = None
    device: str | None = None
    reuse: bool = True

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path("runs/experiments") / self.name

    @property
    def report_path(self) -> Path:
        return Path(self.report_dir) if self.report_dir is not None else self.out_dir / "report"


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(STUDIES)}")
    return STUDIES[name]


def study_configs(req: StudyRequest) -> list[tuple[str, int, RunConfig]]:
    """(label, seed, RunConfig) of every run of a study; the budget is the same for all."""
    study = get_study(req.name)
    if req.preset not in STUDY_PRESETS:
        raise ConfigError(
            f"unknown experiment preset {req.preset!r}; available: {', '.join(STUDY_PRESETS)}"
        )
    if not req.seeds or len(set(req.seeds)) != len(req.seeds):
        raise ConfigError(f"--seeds must be distinct integers, got {list(req.seeds)}")
    n = req.steps if req.steps is not None else PRESETS[req.preset]["train"]["steps"]
    if n < 1:
        raise ConfigError(f"--steps must be >= 1, got {n}")
    every = max(1, min(n // 5, 5000))
    # Scheduled sampling reaches 0 at half the steps, as in the paper (eta -2e-5/step, 100k).
    budget = {
        "train": {"steps": n, "val_every": every, "checkpoint_every": every,
                  "sampling": {"eta_decay": 2.0 / n}},
        "data": {"root": req.data_root, **({"name": req.data} if req.data else {})},
    }  # fmt: skip
    if req.device is not None:
        budget["train"]["device"] = req.device
    study_layer = merge(study.layer, study.cpu_layer) if req.preset == "cpu" else study.layer
    common = merge(study_layer, budget)
    user = parse_set(list(req.sets))
    if "seed" in user.get("train", {}):  # it would be replaced by each of --seeds unread
        raise ConfigError("experiment: the seeds are given by --seeds, not --set train.seed")
    out = []
    for label in study.models:
        sized = {**MODELS[label][1], **SIZES.get(label, {}).get(req.preset, {})}
        own = {"model": sized, "train": RECIPES.get(label, {})}
        layer = merge(merge(merge(common, study.model_layers.get(label, {})), own), user)
        for seed in req.seeds:
            seeded = merge(layer, {"train": {"seed": int(seed)}})
            out.append((label, int(seed), resolve_config(req.preset, None, seeded)))
    return out


# ------------------------------------------------------------------------------- runs
def _comparable(cfg: RunConfig) -> dict:
    d = cfg.to_dict()
    d["train"].pop("device", None)  # where it ran does not change what it is
    d["data"].pop("num_workers", None)
    return d


def _saved_config(run: RunDir) -> RunConfig | None:
    try:
        return run.read_config()
    except (MimcastError, OSError):
        return None


def _finished(run: RunDir, cfg: RunConfig) -> bool:
    if run.read_study_record() is None or not run.eval_dir(cfg.eval.split).metrics_json.is_file():
        return False
    saved = _saved_config(run)
    return saved is not None and _comparable(saved) == _comparable(cfg)


def _candidates(out: Path) -> list[RunDir]:
    """Run folders of sibling studies (same parent folder), to reuse identical finished runs."""
    if not out.parent.is_dir():
        return []
    return [
        RunDir(r)
        for sib in sorted(out.parent.iterdir())
        if sib.is_dir() and sib.resolve() != out.resolve()
        for r in sorted((sib / "runs").glob("*"))
        if r.is_dir()
    ]


def _train_and_evaluate(cfg: RunConfig, run: RunDir, log: Callable) -> None:
    """Train (or resume) one model/seed, evaluate it, and write its study record."""
    resume = overwrite = False
    if run.is_run():
        saved = _saved_config(run)
        if saved is None or _comparable(saved) != _comparable(cfg):
            raise ConfigError(
                f"{run} holds a run of another config (budget, preset or --set changed): "
                "give another --out or remove that folder"
            )
        resume = run.checkpoints.joinpath("last.json").is_file()
        overwrite = not resume
    started = time.perf_counter()
    state = train_run(cfg, run.path, resume=resume, overwrite=overwrite, log=log)
    if state.step < cfg.train.steps:
        raise MimcastError(
            f"training of {run} stopped at step {state.step} of {cfg.train.steps}; "
            "run the same command again to resume the study"
        )
    trained = time.perf_counter() - started
    started = time.perf_counter()
    evaluate_run(run.path, device=cfg.train.device, log=log)
    model = run.read_model_config()
    run.write_study_record(
        {
            "train_seconds": round(trained, 1),
            "eval_seconds": round(time.perf_counter() - started, 1),
            "resumed": resume,
            "steps": state.step,
            "best_step": state.best_step,
            "parameters": sum(p.numel() for p in build_model(model).parameters()),
        }
    )


def _run_one(cfg: RunConfig, run: RunDir, reuse: list[RunDir], log: Callable) -> dict[str, Any]:
    """Train and evaluate one model/seed unless done; returns the run's record."""
    source = run
    if not _finished(run, cfg):
        found = next((r for r in reuse if _finished(r, cfg)), None)
        if found is not None:
            source = found
            log(f"reusing the finished identical run {found}")
        else:
            _train_and_evaluate(cfg, run, log)
    record = source.read_study_record()
    metrics = json.loads(source.eval_dir(cfg.eval.split).metrics_json.read_text())
    return {
        **record,
        "run_dir": source.path.as_posix(),
        "reused": source.path != run.path,
        "config": cfg.to_dict(),
        "n_sequences": metrics["n_sequences"],
        "mean": {k: metrics["mean"].get(k) for k in METRICS},
        "per_frame": {k: metrics["per_frame"].get(k) for k in METRICS},
    }


def _gates(label: str, seed: int, run: dict, out: Path, log: Callable) -> dict[str, Any]:
    """Forget-gate statistics of a run over its test split, cached in <out>/gates/."""
    path = out / "gates" / f"{label}-seed{seed}.json"
    cached = _read_gate_cache(path)
    if path.exists() and cached is None:
        raise ConfigError(f"{path} is not a gate cache mimcast wrote: move it away")
    if cached is not None and cached["run_dir"] == run["run_dir"]:
        return cached["stats"]
    log(f"probing the forget gates of {run['run_dir']}")
    stats = fg.probe_run(Path(run["run_dir"]), device=run["config"]["train"]["device"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, clean_json({"run_dir": run["run_dir"], "stats": stats}))
    return json.loads(path.read_text())["stats"]


def _read_gate_cache(path: Path) -> dict | None:
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(cached, dict) and {"run_dir", "stats"} <= set(cached)
    return cached if ok else None


# ------------------------------------------------------------------------------- the study
def run_study(req: StudyRequest, log: Callable[[str], None] = print) -> Path:
    """Run the requested study end to end and write its report; returns report.md's path."""
    study = get_study(req.name)
    out, report = req.out_dir, ReportDir(req.report_path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is not a folder")
    if out.resolve() == report.path.resolve() or report.path.resolve() in out.resolve().parents:
        raise ConfigError("--out (run folders) must not lie inside --report-dir")
    runs = study_configs(req)  # every config validated before anything runs
    report.check_usable()
    started, wall = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.perf_counter()
    siblings = _candidates(out) if req.reuse else []
    records: dict[str, dict[int, dict]] = {}
    for i, (label, seed, cfg) in enumerate(runs):
        log(f"== {req.name}: {MODELS[label][0]} seed {seed} ({i + 1}/{len(runs)}) ==")
        run = _run_one(cfg, RunDir(out / "runs" / f"{label}-seed{seed}"), siblings, log)
        records.setdefault(label, {})[seed] = run
    results = _results(req, study, runs, records, started=started)
    gates = _gate_stats(study, records, out, log)
    if gates:
        results["gates"] = {k: {n: v for n, v in g.items() if n != "per_seed"}
                            for k, g in gates.items()}  # fmt: skip
    results["wall_seconds"] = round(time.perf_counter() - wall, 1)
    return _write_report(report, results, gates, context_len=runs[0][2].data.options.get(
        "context_len", 10), log=log)  # fmt: skip


def _results(
    req: StudyRequest, study: Study, runs: list, records: dict, *, started: str
) -> dict[str, Any]:
    results = {
        "study": req.name,
        "title": study.title,
        "claim": study.claim,
        "preset": req.preset,
        "seeds": list(req.seeds),
        "command": command_line(req),
        "commit": git_commit(),
        "machine": describe(init_from_env(runs[0][2].train.device)),
        "started": started,
        "subject": study.subject,
        "budget": budget(next(c for label, _, c in runs if label == study.subject)),
        "models": {label: aggregate_seeds(by_seed) for label, by_seed in records.items()},
        "paper": study.paper,
    }
    results["comparisons"] = [compare_models(results["models"], a, b) for a, b in study.pairs]
    results["paper_orderings"] = paper_orderings(results["comparisons"], study.paper)
    return results


def _gate_stats(study: Study, records: dict, out: Path, log: Callable) -> dict[str, Any]:
    if not study.gates:
        return {}
    gates = {}
    for label, by_seed in records.items():
        per_seed = [_gates(label, s, r, out, log) for s, r in by_seed.items()]
        gates[label] = {"per_seed": per_seed, **fg.merge_seeds(per_seed)}
    return gates


def _write_report(
    report: ReportDir, results: dict, gates: dict, *, context_len: int, log: Callable
) -> Path:
    report.create()
    pictures = framewise_plots(results, report)
    gate_lines = []
    if gates:
        merged = {MODELS[k][0]: g for k, g in gates.items()}
        pics = [
            fg.plot_histograms(
                g, f"{MODELS[k][0]}: gate values ({results['study']})", report.gates_hist(k)
            ).name
            for k, g in gates.items()
        ]
        pics.append(fg.plot_share_over_time(merged, context_len, report.gates_share).name)
        gate_lines = fg.report_lines(merged, pics)
    report.write_results(clean_json(results))
    path = report.write_report("\n".join(report_lines(results, pictures, gate_lines)) + "\n")
    log(f"wrote {path}")
    return path
