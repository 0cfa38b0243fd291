"""The `mimcast` command: train, evaluate, predict (and bench, experiment).

Bad input anywhere gives one line `mimcast: error: ...` on stderr and exit code 2, with no
traceback and nothing written. Other exit codes: 1 for an I/O failure outside checkpointing
(one line too), 130 / 143 when training was stopped by SIGINT / SIGTERM after saving a
checkpoint (continue with --resume), 130 for a second Ctrl-C that aborts at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mimcast.errors import ConfigError, MimcastError

EXIT_USAGE = 2
EXIT_IO = 1
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.exit(EXIT_USAGE, f"mimcast: error: {message} (see mimcast {self._sub()} --help)\n")

    def _sub(self) -> str:
        return self.prog.split(" ", 1)[1] if " " in self.prog else ""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mimcast", description="Spatiotemporal prediction with MIM, PredRNN, ConvLSTM")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (defaults: quick preset, Moving MNIST)")
    t.add_argument("--model", help="mim, predrnn or convlstm")
    t.add_argument("--data", help="mmnist, mmnist-accel, mmnist-file, kth, taxibj or custom")
    t.add_argument("--data-root", help="folder or file of the data set")
    t.add_argument("--preset", default="quick", help="quick (default), mmnist, kth or taxibj")
    t.add_argument("--config", type=Path, help="YAML file of config sections")
    t.add_argument("--steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--run-dir", type=Path, default=Path("runs/quick"))
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    t.add_argument("--overwrite", action="store_true", help="start the run in --run-dir again")
    t.add_argument("--precision", choices=["32", "bf16-mixed", "16-mixed"])
    t.add_argument("--device", help="cpu or cuda[:N]")
    t.add_argument("--seed", type=int)
    t.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="any config key, e.g. train.val_every=100 model.hidden=[32,32]",
    )
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")

    e = sub.add_parser("evaluate", help="per-frame metrics, plots and report of a run")
    e.add_argument("--run-dir", type=Path, required=True)
    e.add_argument("--data", help="evaluate on another data set of the same frame shape")
    e.add_argument("--data-root")
    e.add_argument("--split", choices=["train", "val", "test"])
    e.add_argument("--checkpoint", choices=["best", "last"], default="best")
    e.add_argument(
        "--compare",
        type=Path,
        nargs="*",
        default=[],
        help="other evaluated run folders to draw on the same curves",
    )
    e.add_argument("--device", default="cpu")

    r = sub.add_parser("predict", help="forecast from context frames alone")
    r.add_argument("--run-dir", type=Path, required=True)
    r.add_argument("--input", type=Path, required=True, help=".npy/.npz (T,C,H,W) or (N,T,C,H,W)")
    r.add_argument("--horizon", type=int, required=True)
    r.add_argument("--output", type=Path, required=True, help=".npy or .npz")
    r.add_argument("--gif", type=Path)
    r.add_argument("--png", type=Path)
    r.add_argument("--checkpoint", choices=["best", "last"], default="best")
    r.add_argument("--device", default="cpu")
    r.add_argument("--overwrite", action="store_true")
    b = sub.add_parser("bench", help="speed and memory: optimised path vs plain eager fp32")
    b.add_argument("--model", default="mim")
    b.add_argument("--hidden", type=int, default=64)
    b.add_argument("--layers", type=int, default=4)
    b.add_argument("--filter-size", type=int, default=5)
    b.add_argument("--patch-size", type=int, default=4)
    b.add_argument("--size", type=int, default=64)
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--variant", default="paper", choices=["paper", "openstl"])
    b.add_argument("--layer-norm", action="store_true")
    b.add_argument("--seq-len", type=int, default=20, help="frames per sequence (default 20)")
    b.add_argument("--context-len", type=int, default=10, help="context frames (default 10)")
    b.add_argument("--steps", type=int, default=5, help="timed steps after 2 warm-up steps")
    b.add_argument(
        "--checkpoint-steps",
        action="store_true",
        help="also measure the optimised path with activation checkpointing per time step",
    )
    b.add_argument("--json", type=Path, help="also write the raw numbers here")
    b.add_argument("--overwrite", action="store_true", help="replace an existing --json file")

    x = sub.add_parser(
        "experiment", help="run a study of the paper end to end and write its report"
    )
    x.add_argument("name", help="table1, table2, table3 or forget-gates")
    x.add_argument("--preset", default="cpu", help="cpu (default: ~1 h on 2 cores) or paper (GPU)")
    x.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    x.add_argument("--out", type=Path, help="run folders (default runs/experiments/NAME)")
    x.add_argument("--report-dir", type=Path, help="report (default docs/experiments/NAME)")
    x.add_argument("--steps", type=int, help="training steps of every model (tiny tests)")
    x.add_argument("--data", help="another data set than the study's")
    x.add_argument("--data-root")
    x.add_argument("--device", help="cpu or cuda[:N]")
    x.add_argument(
        "--no-reuse",
        action="store_true",
        help="train even where a sibling study holds the identical finished run",
    )
    x.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="any config key, for every model, e.g. model.hidden=[16,16,16,16]",
    )
    return p


def _overrides(a: argparse.Namespace) -> dict:
    from mimcast.training.config import parse_set

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
    }
    for (section, key), value in flags.items():
        if value is not None:
            out.setdefault(section, {})[key] = value
    for section, values in parse_set(a.set).items():
        if isinstance(values, dict):
            out.setdefault(section, {}).update(values)
        else:
            out[section] = values
    return out


def cmd_train(a: argparse.Namespace) -> int:
    from mimcast.training.config import resolve_config
    from mimcast.training.runs import train_run

    cfg = resolve_config(a.preset, a.config, _overrides(a))
    state = train_run(cfg, a.run_dir, resume=a.resume, overwrite=a.overwrite)
    if state.stopped_by is not None:  # a graceful stop: checkpoint saved, no evaluation
        return EXIT_SIGNAL.get(state.stopped_by, 143)
    if not a.no_eval:
        from mimcast.evaluation import evaluate_run
        from mimcast.training.distributed import is_main

        evaluate_run(a.run_dir, device=cfg.train.device)
        if is_main():
            print(f"report: {a.run_dir / 'report.md'}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from mimcast.evaluation import evaluate_run

    evaluate_run(a.run_dir, a.split, a.checkpoint, a.data, a.data_root, tuple(a.compare), a.device)
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from mimcast.prediction import predict_run

    out = predict_run(
        a.run_dir, a.input, a.horizon, a.output, a.gif, a.png, a.checkpoint, a.device, a.overwrite
    )
    print(f"wrote {a.output} {tuple(out.shape)}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    import json

    from mimcast.bench import BenchConfig, format_bench, run_bench

    if a.json is not None:
        if a.json.exists() and not a.overwrite:
            raise ConfigError(f"{a.json} exists: pass --overwrite to replace it")
        if not a.json.parent.is_dir():
            raise ConfigError(f"output folder {a.json.parent} does not exist")
    cfg = BenchConfig(
        model=a.model,
        hidden=a.hidden,
        layers=a.layers,
        filter_size=a.filter_size,
        patch_size=a.patch_size,
        size=a.size,
        batch=a.batch,
        variant=a.variant,
        layer_norm=a.layer_norm,
        seq_len=a.seq_len,
        context_len=a.context_len,
        steps=a.steps,
        checkpoint_steps=a.checkpoint_steps,
    )
    result = run_bench(cfg)
    print(format_bench(result))
    if a.json is not None:
        a.json.write_text(json.dumps(result, indent=1))
    return 0


def cmd_experiment(a: argparse.Namespace) -> int:
    from mimcast.experiments import run_study

    report = run_study(
        a.name,
        a.preset,
        tuple(a.seeds),
        a.out,
        a.report_dir,
        a.steps,
        tuple(a.set),
        a.data,
        a.data_root,
        a.device,
        reuse=not a.no_reuse,
    )
    print(f"report: {report}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "bench": cmd_bench,
    "experiment": cmd_experiment,
}


def _one_line(e: BaseException) -> str:
    """The message on one line (YAML errors, say, span several)."""
    return " ".join(str(e).split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except MimcastError as e:
        print(f"mimcast: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a full disk, a read-only folder: not bad input, but no traceback
        print(f"mimcast: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_IO
    except KeyboardInterrupt:
        print("mimcast: interrupted", file=sys.stderr)
        return 130
    finally:
        from mimcast.training import distributed

        distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
