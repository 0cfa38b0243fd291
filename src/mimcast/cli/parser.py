"""The `mimcast` command line: one sub-parser per command, one line and exit 2 on bad flags."""

from __future__ import annotations

import argparse
from pathlib import Path

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        self.exit(EXIT_USAGE, f"mimcast: error: {message} (see mimcast {sub} --help)\n")


def _sets(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",  # --set a=1 --set b=2 keeps both
        default=[],
        metavar="KEY=VALUE",
        help=f"any config key, e.g. {example} (repeatable; a key given twice: the last wins)",
    )


def _baselines(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--baselines",
        help="trivial forecasts scored beside the model: none, persistence, flow (optical flow, "
        "needs OpenCV) or all (default: eval.baselines, all that are installed)",
    )


def _train(sub) -> None:
    t = sub.add_parser("train", help="train a model (defaults: quick preset, Moving MNIST)")
    t.add_argument("--model", help="a registered model: convlstm, predrnn, mim, ...")
    t.add_argument("--data", help="mmnist, mmnist-accel, mmnist-file, kth, taxibj or custom")
    t.add_argument("--data-root", help="folder or file of the data set")
    t.add_argument("--preset", default="quick", help="quick (default), mmnist, kth, taxibj, ...")
    t.add_argument("--config", type=Path, help="YAML file of config sections")
    t.add_argument("--steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--run-dir", type=Path, default=Path("runs/quick"))
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    t.add_argument("--overwrite", action="store_true", help="start the run in --run-dir again")
    t.add_argument("--precision", choices=["32", "bf16-mixed", "16-mixed"])
    t.add_argument("--device", help="auto, cpu or cuda[:N]")
    t.add_argument("--seed", type=int)
    _sets(t, "train.val_every=100 model.hidden=[32,32]")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    _baselines(t)


def _evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="per-frame metrics, plots and report of a run")
    e.add_argument("--run-dir", type=Path, required=True)
    e.add_argument("--data", help="evaluate on another data set of the same frame shape")
    e.add_argument("--data-root")
    e.add_argument("--split", choices=["train", "val", "test"])
    e.add_argument("--checkpoint", choices=["best", "last"], default="best")
    e.add_argument(
        "--compare", type=Path, nargs="+", action="extend", default=[],
        help="other evaluated run folders to draw on the same curves",
    )  # fmt: skip
    e.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda[:N]")
    _baselines(e)


def _predict(sub) -> None:
    r = sub.add_parser("predict", help="forecast from context frames alone")
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", type=Path, help="a run folder (its best checkpoint)")
    source.add_argument("--model", help="a model folder (mimcast export --format hub) or Hub id")
    source.add_argument(
        "--method", help="no model: a trivial forecast, persistence or flow (optical flow)"
    )
    r.add_argument(
        "--input", type=Path, required=True,
        help=".npy/.npz (T,C,H,W) or (N,T,C,H,W); a video or image folder (its last context "
        "frames); .nc/.zarr/.h5 (a variable with a time axis). At least the model's "
        "context_len frames; values beyond its training range get a note",
    )  # fmt: skip
    r.add_argument(
        "--variable", help="the variable of netCDF/Zarr/HDF5 or the array of .npz to read (if "
        "several); refused for .npy and videos, which hold one",
    )  # fmt: skip
    r.add_argument(
        "--time-step", metavar="STEP",
        help="netCDF/Zarr: forecast from a time axis whose steps differ, its forecast's times "
        "going on by STEP (30min, 1h, 1d, 90s; a number for a numeric axis). Without it such "
        "an axis is refused, as is one out of order; an even axis goes on by its own step",
    )  # fmt: skip
    r.add_argument(
        "--input-units", choices=["data", "model"], default="data",
        help="the context's values: the data's own units (data.json; default) or the model's",
    )  # fmt: skip
    r.add_argument("--horizon", type=int, required=True)
    r.add_argument(
        "--output", type=Path, required=True,
        help=".npy/.npz, .nc/.zarr/.h5 (continuing the input's time axis), or a video "
        "(.mp4 .avi .mkv .webm .gif) of the first forecast",
    )  # fmt: skip
    r.add_argument("--gif", type=Path, help="an animated GIF of the first forecast")
    r.add_argument("--png", type=Path, help="a strip of the first context and forecast")
    r.add_argument("--checkpoint", choices=["best", "last"], default="best")
    r.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda[:N]")
    r.add_argument("--overwrite", action="store_true")


def _data(sub) -> None:
    d = sub.add_parser("data", help="what a data set resolves to: mimcast data info ...")
    d.add_argument("action", choices=["info"])
    d.add_argument("--data", help="a registered data set (default: the preset's)")
    d.add_argument("--data-root", help="folder or file of the data set")
    d.add_argument("--preset", default="quick", help="the preset whose data options apply")
    d.add_argument("--config", type=Path, help="YAML file of config sections")
    _sets(d, "data.options.seq_len=30 data.options.image_size=64")


def _export(sub) -> None:
    x = sub.add_parser("export", help="a run's model for sharing (Hub layout) or deploying (ONNX)")
    x.add_argument("--run-dir", type=Path, required=True)
    x.add_argument("--format", choices=["hub", "onnx"], required=True)
    x.add_argument("--output", type=Path, required=True, help="a folder (hub) or FILE.onnx")
    x.add_argument("--checkpoint", choices=["best", "last"], default="best")
    x.add_argument("--context", type=int, help="onnx: context frames (fixed in the graph)")
    x.add_argument("--horizon", type=int, help="onnx: predicted frames (fixed in the graph)")
    x.add_argument("--units", choices=["data", "model"], default="data", help="onnx: in/out units")
    x.add_argument("--push-to-hub", metavar="REPO_ID", help="hub: also upload (needs a token)")
    x.add_argument("--overwrite", action="store_true")


def _bench(sub) -> None:
    b = sub.add_parser("bench", help="speed and memory: optimised path vs plain eager fp32")
    b.add_argument("--model", default="mim")
    b.add_argument("--hidden", type=int, default=64, help="channels of every layer")
    b.add_argument("--layers", type=int, default=4)
    b.add_argument("--size", type=int, default=64, help="frame height and width")
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--seq-len", type=int, default=20, help="frames per sequence (default 20)")
    b.add_argument("--context-len", type=int, default=10, help="context frames (default 10)")
    b.add_argument("--steps", type=int, default=5, help="timed steps after 2 warm-up steps")
    b.add_argument(
        "--checkpoint-steps",
        action="store_true",
        help="also measure the optimised path with activation checkpointing per time step",
    )
    b.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    b.add_argument(
        "--against-openstl",
        type=Path,
        metavar="PATH",
        help="also measure OpenSTL's own model (a flat copy of its model files, or a checkout)",
    )
    b.add_argument("--rounds", type=int, default=6, help="interleaved rounds (--against-openstl)")
    b.add_argument("--compile", action="store_true", help="also the compiled training step")
    b.add_argument(
        "--study",
        help="every model of this study (table1 ...) at the size it trains it, one table "
        "(--model/--hidden/--layers/--set do not apply)",
    )
    b.add_argument("--preset", default="cpu", help="--study: the study preset, cpu or paper")
    b.add_argument("--json", type=Path, help="also write the raw numbers here")
    b.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    _sets(b, "model.filter_size=3 model.variant=openstl model.layer_norm=true")


def _experiment(sub) -> None:
    x = sub.add_parser("experiment", help="run a study of the paper end to end, write its report")
    x.add_argument("name", help="table1 ... table7 or forget-gates")
    x.add_argument("--preset", default="cpu", help="cpu (default: ~1 h on 2 cores) or paper (GPU)")
    x.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    x.add_argument("--out", type=Path, help="run folders (default runs/experiments/NAME)")
    x.add_argument("--report-dir", type=Path, help="the report (default OUT/report)")
    x.add_argument("--steps", type=int, help="training steps of every model (tiny tests)")
    x.add_argument("--data", help="another data set than the study's")
    x.add_argument("--data-root")
    x.add_argument("--device", help="auto, cpu or cuda[:N]")
    x.add_argument(
        "--no-reuse",
        action="store_true",
        help="train even where a sibling study holds the identical finished run",
    )
    _sets(x, "model.hidden=[16,16,16,16] (for every model)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="mimcast", description="Spatiotemporal prediction with MIM and its baselines")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in (_train, _evaluate, _predict, _export, _data, _bench, _experiment):
        add(sub)
    return p
