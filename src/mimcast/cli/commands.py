"""What each `mimcast` command does with its parsed flags (imports are deferred per command, so
`mimcast --help` starts fast)."""

from __future__ import annotations

import argparse
import json

from mimcast.errors import ConfigError

EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}


def _train_overrides(a: argparse.Namespace) -> dict:
    from mimcast.settings import merge
    from mimcast.training.config import EvalSection, parse_set

    out: dict = {}
    flags = {
        ("model", "name"): a.model,
        ("data", "name"): a.data,
        ("data", "root"): a.data_root,
        ("train", "steps"): a.steps,
        ("train", "batch_size"): a.batch_size,
        ("train", "lr"): a.lr,
        ("train", "precision"): a.precision,
        ("train", "device"): a.device,
        ("train", "seed"): a.seed,
        (EvalSection.SECTION, "baselines"): a.baselines,
    }
    for (section, key), value in flags.items():
        if value is not None:
            out.setdefault(section, {})[key] = value
    return merge(out, parse_set(a.set))


def cmd_train(a: argparse.Namespace) -> int:
    from mimcast.evaluation.baselines import select_baselines
    from mimcast.runs.evaluate import evaluate_run
    from mimcast.runs.rundir import RunDir
    from mimcast.runs.train import train_run
    from mimcast.training.config import resolve_config
    from mimcast.training.distributed import is_main

    cfg = resolve_config(a.preset, a.config, _train_overrides(a))
    if not a.no_eval:  # a baseline that cannot run is refused before the training, not after
        select_baselines(cfg.eval.baselines)
    state = train_run(cfg, a.run_dir, resume=a.resume, overwrite=a.overwrite)
    if state.stopped_by is not None:  # a graceful stop: checkpoint saved, no evaluation
        return EXIT_SIGNAL.get(state.stopped_by, 143)
    if not a.no_eval:
        evaluate_run(a.run_dir, device=cfg.train.device)
        if is_main():
            print(f"report: {RunDir(a.run_dir).report}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from mimcast.runs.evaluate import evaluate_run

    evaluate_run(
        a.run_dir,
        split=a.split,
        which=a.checkpoint,
        data=a.data,
        data_root=a.data_root,
        compare=tuple(a.compare),
        device=a.device,
        baselines=a.baselines,
    )
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from mimcast.runs.predict import PredictRequest, predict_run

    request = PredictRequest(
        input_path=a.input,
        horizon=a.horizon,
        outputs={"output": a.output, "gif": a.gif, "png": a.png},
        variable=a.variable,
        input_units=a.input_units,
        overwrite=a.overwrite,
        time_step=a.time_step,
    )
    if a.method is not None:
        from mimcast.runs.baseline_predict import predict_baseline

        out = predict_baseline(a.method, request)
    elif a.run_dir is not None:
        out = predict_run(a.run_dir, request, which=a.checkpoint, device=a.device)
    else:
        from mimcast.share.hub import predict_hub
        from mimcast.training.distributed import init_from_env

        out = predict_hub(a.model, request, device=init_from_env(a.device))
    pictures = [str(f) for f in (a.gif, a.png) if f is not None]
    also = f" (and {', '.join(pictures)})" if pictures else ""
    print(f"wrote {a.output}{also}: a forecast shaped {tuple(out.shape)}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    if a.format == "hub":
        from mimcast.share.hub import export_hub, push

        model = export_hub(a.run_dir, a.output, which=a.checkpoint, overwrite=a.overwrite)
        print(f"wrote {a.output} (config.json, model.safetensors, README.md)")
        if a.push_to_hub:
            card = (a.output / "README.md").read_text()
            print(f"pushed: {push(model, a.push_to_hub, card)}")
        return 0
    from mimcast.share.onnx_export import export_onnx

    if a.context is None or a.horizon is None:
        raise ConfigError("--format onnx needs --context N and --horizon K (the graph fixes both)")
    export_onnx(
        a.run_dir, a.output, context=a.context, horizon=a.horizon, units=a.units,
        which=a.checkpoint, overwrite=a.overwrite,
    )  # fmt: skip
    print(f"wrote {a.output}: {a.context} context frames -> {a.horizon} predicted frames, "
          f"{a.units} units, any batch size")  # fmt: skip
    return 0


def bench_config(a: argparse.Namespace):
    """The bench's model: the paper preset's, changed by --model/--hidden/--layers/--set."""
    from mimcast.cli.bench import BenchConfig
    from mimcast.settings import merge
    from mimcast.training.config import parse_set, resolve_config

    for flag in ("hidden", "layers", "size"):
        if getattr(a, flag) < 1:
            raise ConfigError(f"bench: --{flag.replace('_', '-')} must be >= 1")
    layer = {"model": {"name": a.model, "hidden": [a.hidden] * a.layers}}
    overrides = merge(layer, parse_set(a.set))
    if set(overrides) - {"model"}:
        raise ConfigError("bench: --set takes model.* keys only")
    model = resolve_config("paper", None, overrides).model.with_frames((1, a.size, a.size))
    return BenchConfig(
        model=model,
        device=a.device,
        batch=a.batch,
        seq_len=a.seq_len,
        context_len=a.context_len,
        steps=a.steps,
        grad_checkpointing=a.checkpoint_steps,
    )


def cmd_bench(a: argparse.Namespace) -> int:
    from mimcast.cli.bench import format_bench, run_bench
    from mimcast.cli.peer import format_against, run_against

    if a.json is not None:
        if a.json.exists() and not a.overwrite:
            raise ConfigError(f"{a.json} exists: pass --overwrite to replace it")
        if not a.json.parent.is_dir():
            raise ConfigError(f"output folder {a.json.parent} does not exist")
    if a.rounds < 1:
        raise ConfigError("bench: --rounds must be >= 1")
    if a.study is not None:
        result = _bench_study(a)
    elif a.against_openstl is not None:
        cfg = bench_config(a)
        result = run_against(cfg, a.against_openstl, rounds=a.rounds, compile_=a.compile)
        print(format_against(result))
    else:
        result = run_bench(bench_config(a))
        print(format_bench(result))
    if a.json is not None:
        from mimcast.fs import atomic_write

        atomic_write(a.json, json.dumps(result, indent=1))
    return 0


def _bench_study(a: argparse.Namespace) -> dict:
    from mimcast.cli.bench_models import format_model_table, run_model_table, study_bench_configs

    if a.against_openstl is not None or a.set:
        raise ConfigError("bench --study: --against-openstl and --set do not apply")
    if a.size < 1 or a.steps < 1:
        raise ConfigError("bench --study: --size and --steps must be >= 1")
    configs = study_bench_configs(a.study, a.preset, a.size, a.steps, a.device)
    result = run_model_table(configs)
    print(format_model_table(result))
    return result


def cmd_experiment(a: argparse.Namespace) -> int:
    from mimcast.studies.experiments import StudyRequest, run_study

    request = StudyRequest(
        name=a.name,
        preset=a.preset,
        seeds=tuple(a.seeds),
        out=a.out,
        report_dir=a.report_dir,
        steps=a.steps,
        sets=tuple(a.set),
        data=a.data,
        data_root=a.data_root,
        device=a.device,
        reuse=not a.no_reuse,
    )
    print(f"report: {run_study(request)}")
    return 0


def cmd_data(a: argparse.Namespace) -> int:
    from mimcast.runs.datasets import describe_splits
    from mimcast.settings import merge
    from mimcast.training.config import parse_set, resolve_config

    flags = {k: v for k, v in (("name", a.data), ("root", a.data_root)) if v is not None}
    cfg = resolve_config(a.preset, a.config, merge({"data": flags}, parse_set(a.set)))
    print(describe_splits(cfg))
    return 0


COMMANDS = {
    "data": cmd_data,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export": cmd_export,
    "bench": cmd_bench,
    "experiment": cmd_experiment,
}
