"""A run's model, and forecasts from context frames alone in the input's own units and layout.

The input is an array (T, C, H, W) or (N, T, C, H, W), a video or a netCDF/Zarr/HDF5 variable
(formats.py), in the units of the data the run was trained on (or, asked for, the model's);
the output has the same layout and units with `horizon` frames. The map between data units
and model units is the run's DataSpec (data.json).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mimcast.data import DataSpec
from mimcast.errors import CheckpointError, ConfigError, DataError
from mimcast.evaluation import viz
from mimcast.fs import staged
from mimcast.models import Forecaster
from mimcast.runs import formats
from mimcast.runs.rundir import RunDir
from mimcast.training import distributed as dist_utils
from mimcast.training.checkpoint import load_checkpoint, model_from_checkpoint
from mimcast.training.config import RunConfig

MAX_HORIZON = 1000  # free-running forecasts have long lost the data by then
OUTPUTS = {"output": formats.OUTPUT_EXT, "gif": (".gif",), "png": (".png",)}
INPUT_UNITS = ("data", "model")
# Values spread this many times wider than the training range are in other units (pixels
# 0-255 for data in [0, 1], mm/h x 10), not a new extreme.
OTHER_UNITS_SPREAD = 10


def load_run_model(run: RunDir, which: str, device: str) -> tuple[Forecaster, int]:
    """The `which` (best/last) checkpoint's model of a run, in eval mode, and its step.

    The checkpoint must be of the run's own model (model.json): one copied in from another run
    is refused rather than used under this run's name.
    """
    run.require_run()
    ckpt = load_checkpoint(run.checkpoints, which)
    expected, got = run.read_model_config(), ckpt.model_config
    if expected != got:
        raise CheckpointError(
            f"checkpoint {ckpt.path} is of another model ({got.name}, hidden "
            f"{list(got.hidden)}, frames {(got.in_channels, got.height, got.width)}) than "
            f"the run in {run} ({expected.name}, hidden {list(expected.hidden)}, frames "
            f"{(expected.in_channels, expected.height, expected.width)})"
        )
    return model_from_checkpoint(ckpt).to(device).eval(), ckpt.step


def load_model(run_dir: str | Path, which: str = "best", device: str = "auto") -> Forecaster:
    """A trained model from its run folder alone: `mimcast.load_model("runs/quick")`."""
    return load_run_model(RunDir(run_dir), which, dist_utils.init_from_env(device))[0]


def check_outputs(targets: dict[str, Path | None], input_path: Path, overwrite: bool) -> None:
    """Refuse outputs that would overwrite the input, each other or a file (without
    --overwrite), a folder mimcast did not write, have the wrong extension, or lie in a
    missing folder."""
    given = {k: Path(p) for k, p in targets.items() if p is not None}
    seen: dict[Path, str] = {}
    for kind, p in given.items():
        if p.suffix.lower() not in OUTPUTS[kind]:
            raise ConfigError(f"--{kind} must end in {' or '.join(OUTPUTS[kind])}, got {p}")
        if p.resolve() in seen:
            raise ConfigError(f"--{kind} and --{seen[p.resolve()]} name the same file {p}")
        seen[p.resolve()] = kind
        if p.exists() and input_path.exists() and p.resolve() == input_path.resolve():
            raise ConfigError(f"refusing to write over the input {input_path}")
        if p.exists() and not overwrite:
            raise ConfigError(f"{p} exists: pass --overwrite to replace it")
        if p.is_dir() and not formats.written_by_mimcast(p):
            raise ConfigError(f"{p} is a folder mimcast did not write: it is not replaced")
        if not p.parent.is_dir():
            raise ConfigError(f"output folder {p.parent} does not exist")


def context_in_model_units(
    context: formats.Context,
    spec: DataSpec,
    where: Path,
    input_units: str = "data",
    log: Callable[[str], None] = print,
) -> np.ndarray:
    """(N, T, C, H, W) float64 in model units, or a DataError naming what is wrong.

    Video frames are pixels (0-255) spanning the model's value range. Other inputs are in
    `input_units`: the data's own (data.json) or the model's, checked by `check_units`.
    """
    batch = _checked_batch(context.frames, spec, where)
    if context.kind == "video":  # pixels: black to white is the model's value range
        lo, hi = spec.value_range
        return lo + batch.astype(np.float64) / 255.0 * (hi - lo)
    check_units(batch, spec, where, input_units, log)
    if input_units == "model":
        return batch.astype(np.float64)
    return spec.to_model_units(batch)


def _checked_batch(frames: np.ndarray, spec: DataSpec, where: Path) -> np.ndarray:
    if frames.ndim not in (4, 5):
        raise DataError(
            f"{where}: context must be (T, C, H, W) or (N, T, C, H, W), got shape {frames.shape}"
        )
    batch = frames[None] if frames.ndim == 4 else frames
    if 0 in batch.shape:
        raise DataError(f"{where}: the context is empty (shape {frames.shape})")
    if batch.shape[1] < spec.context_len:  # a forecast from fewer frames than it learnt from
        raise DataError(
            f"{where}: {_frames(batch.shape[1])} of context, but the model was trained on "
            f"{_frames(spec.context_len)} (context_len): give at least {spec.context_len}"
        )
    if tuple(batch.shape[2:]) != spec.frame_shape:
        raise DataError(
            f"{where}: frames are {tuple(batch.shape[2:])} (C, H, W), the model expects "
            f"{spec.frame_shape}"
        )
    if not np.issubdtype(batch.dtype, np.number) or np.issubdtype(batch.dtype, np.complexfloating):
        raise DataError(f"{where}: dtype {batch.dtype} is not real numbers")
    if not np.isfinite(batch).all():
        raise DataError(f"{where}: the context holds NaN or inf values")
    return batch


def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"


def check_units(
    batch: np.ndarray, spec: DataSpec, where: Path, input_units: str, log: Callable[[str], None]
) -> None:
    """Refuse a context whose values look like other units than `input_units` claims
    (`_other_units`); forecast from values merely beyond the training range, with a note
    (today's storm may be the strongest yet). The forecast stays within that range: it is
    clipped to it."""
    lo, hi = spec.value_range if input_units == "model" else spec.data_range()
    units = "model units" if input_units == "model" else spec.units
    reason = _other_units(batch, spec, (lo, hi), units, in_data_units=input_units == "data")
    if reason is not None:
        raise DataError(f"{where}: {reason}")
    x_lo, x_hi = float(batch.min()), float(batch.max())
    if x_lo < lo or x_hi > hi:
        log(
            f"note: {where}: values span [{x_lo:.4g}, {x_hi:.4g}], beyond the training range "
            f"[{lo:.4g}, {hi:.4g}] of {units}; forecasting from them, within that range"
        )


def _other_units(
    batch: np.ndarray, spec: DataSpec, vrange: tuple[float, float], units: str, *,
    in_data_units: bool,
) -> str | None:  # fmt: skip
    """Why the values look like other units than those of `vrange` (None: they do not).

    The one rule: values in the right units overlap the training range or lie near it, and
    are spread about as widely. Refused are values spread OTHER_UNITS_SPREAD or more times
    wider than the range (0-255 pixels for data in [0, 1], mm/h x 10), values wholly more than
    the range's own width away from it (kelvin for °C), and, for a context in data units
    (`in_data_units`), uint8 pixels for data that are not pixels, or values within the
    model's range for data whose range is many times wider (the model's units)."""
    (lo, hi), (m_lo, m_hi), (d_lo, d_hi) = vrange, spec.value_range, spec.data_range()
    x_lo, x_hi = float(batch.min()), float(batch.max())
    span = max(hi - lo, 1e-12)
    if in_data_units and batch.dtype == np.uint8 and not (d_lo > -13 and 128 < d_hi < 268):
        return (f"uint8 pixels, but the model's data is {spec.units} in [{d_lo:.4g}, "
                f"{d_hi:.4g}]: convert the context to those units")  # fmt: skip
    margin = 0.05 * (m_hi - m_lo)
    in_model_range = m_lo - margin <= x_lo and x_hi <= m_hi + margin and x_hi > x_lo
    if in_data_units and (d_hi - d_lo) > 5 * (m_hi - m_lo) and in_model_range:
        return (
            f"values span [{x_lo:.4g}, {x_hi:.4g}], the model's units, while its data is "
            f"{spec.units} in [{d_lo:.4g}, {d_hi:.4g}]: pass --input-units model if they are "
            "model units, or convert them"
        )
    if x_hi - x_lo >= OTHER_UNITS_SPREAD * span or x_lo > hi + span or x_hi < lo - span:
        return (
            f"values span [{x_lo:.4g}, {x_hi:.4g}], far from the range [{lo:.4g}, {hi:.4g}] "
            f"of {units} the model was trained on: wrong units? convert them "
            "(--input-units data|model)"
        )
    return None


def forecast(
    model: Forecaster, x: np.ndarray, *, horizon: int, device: str, batch_size: int = 16
) -> np.ndarray:
    """Free-running forecasts (N, horizon, C, H, W) in model units, clipped to `value_range`
    of the model's data (given as model units x)."""
    outs = []
    for i in range(0, len(x), batch_size):
        ctx = torch.from_numpy(x[i : i + batch_size]).float().to(device)
        outs.append(model.predict(ctx, horizon).cpu().numpy())
    return np.concatenate(outs).astype(np.float64)


@dataclass(frozen=True)
class PredictRequest:
    """One forecast asked for: from which context, how far, into which files."""

    input_path: Path
    horizon: int
    outputs: dict[str, Path | None]  # "output" (any format), "gif", "png"
    variable: str | None = None  # netCDF/Zarr/HDF5: the variable to read
    input_units: str = "data"  # or "model"
    overwrite: bool = False
    video_fit: str = "resize"  # how video frames are fitted to the model's (a video run's own)
    time_step: str | None = None  # netCDF/Zarr: the step a forecast continues by (uneven input)

    def check(self) -> None:
        """Everything that can be refused before a model is loaded."""
        if not isinstance(self.horizon, int) or not 1 <= self.horizon <= MAX_HORIZON:
            raise ConfigError(f"--horizon must be in [1, {MAX_HORIZON}], got {self.horizon}")
        if self.input_units not in INPUT_UNITS:
            raise ConfigError(f"--input-units must be data or model, got {self.input_units!r}")
        if self.outputs.get("output") is None:
            raise ConfigError("--output is required")
        check_outputs(self.outputs, Path(self.input_path), self.overwrite)


def trained_video_fit(cfg: RunConfig) -> str | None:
    """How a run on videos fitted their frames to the model's (resize or crop); None for a run
    on other data."""
    if cfg.data.name != "video":
        return None
    return cfg.data.options.get("fit", PredictRequest.video_fit)


def predict_run(
    run_dir: str | Path,
    request: PredictRequest,
    *,
    which: str = "best",
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> np.ndarray:
    """Forecast with a run's model (its `which` checkpoint); write the request's outputs, all
    of them or none."""
    request.check()
    run = RunDir(run_dir)
    run.require_run()
    spec, fit = run.read_data_spec(), trained_video_fit(run.read_config())
    if fit is not None:  # contexts from videos are fitted as the training clips were
        request = replace(request, video_fit=fit)
    model, _ = load_run_model(run, which, dist_utils.init_from_env(device))
    return predict_with(model, spec, request, log)


def predict_with(
    model: Forecaster,
    spec: DataSpec,
    request: PredictRequest,
    log: Callable[[str], None] = print,
) -> np.ndarray:
    """Forecast with a model (from a run or a Hub folder) whose data spec is `spec`; returns
    the forecast in the input's layout and units. Notes (values beyond the training range)
    go to `log`."""
    request.check()
    where = Path(request.input_path)
    context = formats.read_context(
        where, spec, request.variable, fit=request.video_fit, time_step=request.time_step
    )
    formats.check_writable(request.outputs["output"], context)
    x = context_in_model_units(context, spec, where, request.input_units, log)
    lo, hi = spec.value_range
    device = str(next(model.parameters()).device)
    pred_model = np.clip(forecast(model, x, horizon=request.horizon, device=device), lo, hi)
    in_data_units = request.input_units == "data" or context.kind == "video"
    pred = (spec.to_data_units(pred_model) if in_data_units else pred_model).astype(np.float32)
    result = pred[0] if context.frames.ndim == 4 else pred
    units = formats.Units(spec.units, spec.data_range()) if in_data_units else \
        formats.Units("model units", spec.value_range)  # fmt: skip
    pictures = {"context": x[0], "first": pred_model[0], "vrange": (lo, hi)}
    write_outputs(request.outputs, result, context, units, pictures)
    return result


def write_outputs(targets: dict, result: np.ndarray, context, units, pictures: dict) -> None:
    """The forecast `result` into every output of `targets` (output, gif, png), all or none;
    `pictures` holds the first context and forecast and their range (vrange) for gif and png."""
    vrange = pictures["vrange"]
    writers = {
        "gif": lambda t: viz.save_gif(pictures["first"], t, vrange=vrange, scale=2),
        "png": lambda t: viz.save_strip(
            pictures["context"], None, pictures["first"], t, vrange=vrange
        ),  # fmt: skip
        "output": lambda t: formats.write_prediction(t, result, context, units),
    }
    chosen = [(kind, Path(p)) for kind, p in targets.items() if p is not None]
    with staged([p for _, p in chosen]) as tmps:  # all or nothing
        for (kind, _), tmp in zip(chosen, tmps):
            writers[kind](tmp)
