"""Predict the future from context frames alone, in the data's own units and layout.

The input is a .npy/.npz array shaped (T, C, H, W) or (N, T, C, H, W) in the units of the data
the run was trained on; the output has the same layout with `horizon` frames. The mapping
between data units and model units is the affine map saved in the run folder (data.json).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from mimcast import viz
from mimcast.errors import ConfigError, DataError
from mimcast.training.checkpoint import load_model

DATA_JSON = "data.json"


def save_data_spec(run_dir: Path, dataset) -> dict:
    """Record the data's frame shape, range and units transform (an affine map) in data.json."""
    to_units = getattr(dataset, "to_units", None)
    probe = np.array([0.0, 1.0, 0.5], dtype=np.float64)
    if to_units is None:
        scale, offset = 1.0, 0.0
    else:
        u = np.asarray(to_units(probe.copy()), dtype=np.float64)
        offset, scale = float(u[0]), float(u[1] - u[0])
        if not np.isclose(u[2], offset + 0.5 * scale, rtol=1e-5, atol=1e-8):
            raise DataError(f"{type(dataset).__name__}.to_units is not affine; cannot save it")
    spec = {
        "frame_shape": [int(x) for x in dataset.frame_shape],
        "value_range": [float(x) for x in dataset.value_range],
        "units": str(getattr(dataset, "units", "")),
        "units_scale": scale,  # data units = model units * scale + offset
        "units_offset": offset,
        "context_len": int(dataset.context_len),
    }
    path = Path(run_dir) / DATA_JSON
    tmp = path.with_name(f".{DATA_JSON}.tmp")  # written whole or not at all
    tmp.write_text(json.dumps(spec, indent=1))
    os.replace(tmp, path)
    return spec


def read_data_spec(run_dir: Path) -> dict:
    path = Path(run_dir) / DATA_JSON
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no {DATA_JSON}: is it a mimcast run folder?")
    try:
        spec = json.loads(path.read_text())
    except ValueError as e:
        raise ConfigError(f"{path} is damaged: {e}") from e
    keys = ("frame_shape", "value_range", "units_scale", "units_offset")
    if not isinstance(spec, dict) or any(k not in spec for k in keys):
        raise ConfigError(f"{path} is damaged: it needs the keys {', '.join(keys)}")
    return spec


def load_context(path: Path) -> np.ndarray:
    """A context array from .npy or .npz (one array, or the key 'context'), read safely."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.files)
                if "context" in keys:
                    return z["context"]
                if len(keys) != 1:
                    raise DataError(f"{path} holds arrays {keys}: name the context array 'context'")
                return z[keys[0]]
        return np.load(path, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError) as e:
        raise DataError(f"cannot read {path} as a numpy array: {e}") from e


def predict_run(
    run_dir: Path,
    input_path: Path,
    horizon: int,
    output_path: Path,
    gif: Path | None = None,
    png: Path | None = None,
    which: str = "best",
    device: str = "cpu",
    overwrite: bool = False,
    batch_size: int = 16,
) -> np.ndarray:
    """Forecast `horizon` frames after the context in input_path; write them to output_path."""
    input_path, output_path = Path(input_path), Path(output_path)
    if horizon < 1:
        raise ConfigError(f"--horizon must be >= 1, got {horizon}")
    if output_path.suffix not in (".npy", ".npz"):
        raise ConfigError(f"--output must end in .npy or .npz, got {output_path}")
    targets = [p for p in (output_path, gif, png) if p is not None]
    for p in targets:
        if p.exists() and input_path.exists() and p.resolve() == input_path.resolve():
            raise ConfigError(f"refusing to write over the input file {input_path}")
        if p.exists() and not overwrite:
            raise ConfigError(f"{p} exists: pass --overwrite to replace it")
        if not p.parent.is_dir():
            raise ConfigError(f"output folder {p.parent} does not exist")
    spec = read_data_spec(run_dir)
    context = load_context(input_path)
    single = context.ndim == 4
    if context.ndim not in (4, 5):
        raise DataError(
            f"{input_path}: context must be (T, C, H, W) or (N, T, C, H, W), got shape "
            f"{context.shape}"
        )
    batch = context[None] if single else context
    c, h, w = spec["frame_shape"]
    if tuple(batch.shape[2:]) != (c, h, w):
        raise DataError(
            f"{input_path}: frames are {tuple(batch.shape[2:])} (C, H, W), the model expects "
            f"{(c, h, w)}"
        )
    if not np.issubdtype(batch.dtype, np.number):
        raise DataError(f"{input_path}: dtype {batch.dtype} is not numeric")
    if not np.isfinite(batch).all():
        raise DataError(f"{input_path}: the context holds NaN or inf values")
    scale, offset = spec["units_scale"], spec["units_offset"]
    x = (batch.astype(np.float64) - offset) / scale
    lo, hi = spec["value_range"]
    margin = 0.05 * (hi - lo)
    if x.min() < lo - margin or x.max() > hi + margin:
        raise DataError(
            f"{input_path}: values span [{batch.min():.4g}, {batch.max():.4g}] "
            f"{spec['units']}, outside the data's range [{lo * scale + offset:.4g}, "
            f"{hi * scale + offset:.4g}]: wrong units?"
        )
    model = load_model(run_dir, which, device)
    outs = []
    for i in range(0, len(x), batch_size):
        ctx = torch.from_numpy(x[i : i + batch_size]).float().to(device)
        outs.append(model.predict(ctx, horizon).clamp(lo, hi).cpu().numpy())
    pred_model = np.concatenate(outs).astype(np.float64)
    pred = (pred_model * scale + offset).astype(np.float32)
    result = pred[0] if single else pred
    # Everything is written under temporary names and renamed at the end: all or nothing.
    staged: list[tuple[Path, Path]] = []
    try:
        for target, write in (
            (gif, lambda t: viz.save_gif(pred_model[0], t, vrange=(lo, hi), scale=2)),
            (png, lambda t: viz.save_strip(x[0], None, pred_model[0], t, vrange=(lo, hi))),
            (output_path, lambda t: _save_array(t, result)),
        ):
            if target is not None:
                tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}{target.suffix}")
                staged.append((tmp, target))
                write(tmp)
        for tmp, target in staged:
            os.replace(tmp, target)
    finally:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()
    return result


def _save_array(path: Path, array: np.ndarray) -> None:
    if path.suffix == ".npz":
        with open(path, "wb") as f:
            np.savez(f, prediction=array)
    else:
        with open(path, "wb") as f:
            np.save(f, array)
