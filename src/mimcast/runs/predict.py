"""A run's model, and forecasts from context frames alone in the data's own units and layout.

The input is a .npy/.npz array shaped (T, C, H, W) or (N, T, C, H, W) in the units of the data
the run was trained on; the output has the same layout with `horizon` frames. The map between
data units and model units is the run's DataSpec (data.json).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mimcast.data import DataSpec
from mimcast.errors import CheckpointError, ConfigError, DataError
from mimcast.evaluation import viz
from mimcast.fs import staged
from mimcast.models import Forecaster
from mimcast.runs.rundir import RunDir
from mimcast.training import distributed as dist_utils
from mimcast.training.checkpoint import load_checkpoint, model_from_checkpoint

MAX_HORIZON = 1000  # free-running forecasts have long lost the data by then
OUTPUTS = {"output": (".npy", ".npz"), "gif": (".gif",), "png": (".png",)}


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


def load_context(path: Path) -> np.ndarray:
    """A context array from .npy or .npz (one array, or the key 'context'), read safely."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    try:
        return _read_npz(path) if path.suffix == ".npz" else np.load(path, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"cannot read {path} as a numpy array: {e}") from e


def _read_npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        if "context" in keys:
            return z["context"]
        if len(keys) != 1:
            raise DataError(f"{path} holds arrays {keys}: name the context array 'context'")
        return z[keys[0]]


def check_outputs(targets: dict[str, Path | None], input_path: Path, overwrite: bool) -> None:
    """Refuse outputs that would overwrite the input, each other or a file (without
    --overwrite), have the wrong extension, or lie in a missing folder."""
    given = {k: Path(p) for k, p in targets.items() if p is not None}
    seen: dict[Path, str] = {}
    for kind, p in given.items():
        if p.suffix.lower() not in OUTPUTS[kind]:
            raise ConfigError(f"--{kind} must end in {' or '.join(OUTPUTS[kind])}, got {p}")
        if p.resolve() in seen:
            raise ConfigError(f"--{kind} and --{seen[p.resolve()]} name the same file {p}")
        seen[p.resolve()] = kind
        if p.exists() and input_path.exists() and p.resolve() == input_path.resolve():
            raise ConfigError(f"refusing to write over the input file {input_path}")
        if p.exists() and not overwrite:
            raise ConfigError(f"{p} exists: pass --overwrite to replace it")
        if not p.parent.is_dir():
            raise ConfigError(f"output folder {p.parent} does not exist")


def context_in_model_units(context: np.ndarray, spec: DataSpec, where: Path) -> np.ndarray:
    """(N, T, C, H, W) float64 in model units, or a DataError naming what is wrong."""
    if context.ndim not in (4, 5):
        raise DataError(
            f"{where}: context must be (T, C, H, W) or (N, T, C, H, W), got shape {context.shape}"
        )
    batch = context[None] if context.ndim == 4 else context
    if 0 in batch.shape:
        raise DataError(f"{where}: the context is empty (shape {context.shape})")
    if tuple(batch.shape[2:]) != spec.frame_shape:
        raise DataError(
            f"{where}: frames are {tuple(batch.shape[2:])} (C, H, W), the model expects "
            f"{spec.frame_shape}"
        )
    if not np.issubdtype(batch.dtype, np.number) or np.issubdtype(batch.dtype, np.complexfloating):
        raise DataError(f"{where}: dtype {batch.dtype} is not real numbers")
    if not np.isfinite(batch).all():
        raise DataError(f"{where}: the context holds NaN or inf values")
    x = spec.to_model_units(batch)
    lo, hi = spec.value_range
    margin = 0.05 * (hi - lo)
    if x.min() < lo - margin or x.max() > hi + margin:
        d_lo, d_hi = spec.data_range()
        raise DataError(
            f"{where}: values span [{batch.min():.4g}, {batch.max():.4g}] {spec.units}, outside "
            f"the data's range [{d_lo:.4g}, {d_hi:.4g}]: wrong units?"
        )
    return x


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


def predict_run(
    run_dir: str | Path,
    *,
    input_path: Path,
    horizon: int,
    output_path: Path,
    gif: Path | None = None,
    png: Path | None = None,
    which: str = "best",
    device: str = "auto",
    overwrite: bool = False,
) -> np.ndarray:
    """Forecast `horizon` frames after the context in input_path with a run's model; write
    them to output_path (and the optional pictures), all of them or none."""
    outputs = {"output": Path(output_path), "gif": gif, "png": png}
    _check_request(horizon, outputs, Path(input_path), overwrite)
    run = RunDir(run_dir)
    run.require_run()
    spec = run.read_data_spec()
    device = dist_utils.init_from_env(device)
    model, _ = load_run_model(run, which, device)
    return predict_with(model, spec, input_path=Path(input_path), horizon=horizon,
                        outputs=outputs, overwrite=overwrite)  # fmt: skip


def _check_request(horizon: int, outputs: dict, input_path: Path, overwrite: bool) -> None:
    if not isinstance(horizon, int) or not 1 <= horizon <= MAX_HORIZON:
        raise ConfigError(f"--horizon must be in [1, {MAX_HORIZON}], got {horizon}")
    check_outputs(outputs, input_path, overwrite)


def predict_with(
    model: Forecaster,
    spec: DataSpec,
    *,
    input_path: Path,
    horizon: int,
    outputs: dict[str, Path | None],
    overwrite: bool = False,
) -> np.ndarray:
    """Forecast with a model (from a run or a Hub folder) whose data spec is `spec`."""
    _check_request(horizon, outputs, input_path, overwrite)
    context = load_context(input_path)
    x = context_in_model_units(context, spec, input_path)
    device = str(next(model.parameters()).device)
    lo, hi = spec.value_range
    pred_model = np.clip(forecast(model, x, horizon=horizon, device=device), lo, hi)
    pred = spec.to_data_units(pred_model).astype(np.float32)
    result = pred[0] if context.ndim == 4 else pred
    _write_outputs(
        outputs,
        result=result,
        context=x[0],
        first=pred_model[0],
        vrange=(lo, hi),
    )
    return result


def _write_outputs(
    targets: dict[str, Path | None],
    *,
    result: np.ndarray,
    context: np.ndarray,
    first: np.ndarray,
    vrange: tuple[float, float],
) -> None:
    writers = {
        "gif": lambda t: viz.save_gif(first, t, vrange=vrange, scale=2),
        "png": lambda t: viz.save_strip(context, None, first, t, vrange=vrange),
        "output": lambda t: _save_array(t, result),
    }
    chosen = [(kind, Path(p)) for kind, p in targets.items() if p is not None]
    with staged([p for _, p in chosen]) as tmps:  # all or nothing
        for (kind, _), tmp in zip(chosen, tmps):
            writers[kind](tmp)


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        if path.suffix == ".npz":
            np.savez(f, prediction=array)
        else:
            np.save(f, array)
