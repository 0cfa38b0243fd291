"""Models in the Hugging Face Hub's layout: a folder with config.json, model.safetensors and a
README model card, written and read through huggingface_hub (a local folder or a Hub id).

    config.json        {"model_config": ModelConfig, "data": DataSpec} (frame shape, value
                       range, units: what predictions in the data's own units need; and
                       video_fit, crop or resize, for a model trained on videos)
    model.safetensors  the weights (a run's best checkpoint: its moving average when it has one)
    README.md          the model card: the model, the data, the training config, test metrics

`predict --model` fits a video context by video_fit, as the run's own predict does.

Loading is strict: only safetensors (nothing is unpickled), config.json's values must be ones
mimcast writes (hub_config.py), every tensor must fit the model by name and shape (read from
the file's header before the model is built) and be finite; a bad folder or file is one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from mimcast.data import DataSpec
from mimcast.errors import CheckpointError, ConfigError, MimcastError, StorageError
from mimcast.fs import new_file_mode, storage_error
from mimcast.models import Forecaster
from mimcast.runs.predict import PredictRequest, load_run_model, predict_with, trained_video_fit
from mimcast.runs.rundir import RunDir
from mimcast.share.hub_config import FILES, VIDEO_FIT, WEIGHTS, read_hub_config

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def hub_config(model: Forecaster) -> dict:
    return {"model_config": model.config.to_dict(), "data": model.data}


def _check_output(folder: Path, overwrite: bool) -> None:
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ConfigError(f"--output {folder} exists and is not a folder")
    if not folder.is_dir() or not any(folder.iterdir()):
        if not folder.parent.is_dir():
            raise ConfigError(f"output folder {folder.parent} does not exist")
        return
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in FILES or p.is_symlink())
    if foreign:
        raise ConfigError(
            f"{folder} holds files of another kind ({', '.join(foreign[:3])}): choose another "
            "--output"
        )
    if not overwrite:
        raise ConfigError(f"{folder} holds an exported model: pass --overwrite to replace it")


def save_hub_folder(model: Forecaster, folder: Path, *, card: str, overwrite: bool) -> Path:
    """Write the model into `folder` (new, empty, or a model export with overwrite): into a
    staging folder first, renamed into place when complete."""
    folder = Path(folder)
    _check_output(folder, overwrite)
    stage = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    try:
        model.save_pretrained(stage, config=hub_config(model), model_card_kwargs={"text": card})
        os.chmod(stage / WEIGHTS, new_file_mode())  # safetensors writes 0600, whatever the umask
        if folder.exists():
            for name in FILES:
                (folder / name).unlink(missing_ok=True)
            folder.rmdir()
        os.replace(stage, folder)
    except OSError as e:
        raise storage_error(getattr(e, "filename", None) or stage, e) from e
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return folder


def model_card(run: RunDir, model: Forecaster, step: int, folder: Path) -> str:
    """The README of an export: what the model is, its data, its training and test metrics."""
    cfg = run.read_config()
    m, d = model.config, model.data or {}
    lines = [
        f"# {m.name} ({m.variant}) trained with mimcast",
        "",
        f"A {len(m.hidden)}-layer {m.name} forecaster (hidden {list(m.hidden)}, filter "
        f"{m.filter_size}, patch {m.patch_size}) for frames of {d.get('frame_shape')} (C, H, W), "
        f"trained on `{cfg.data.name}` (the checkpoint of step {step} of {cfg.train.steps}).",
        "",
        "```python",
        "import mimcast",
        f'model = mimcast.from_pretrained("{folder.name}")  # a local folder or a Hub id',
        "future = model.predict(context, horizon=10)  # (B, T, C, H, W) in model units",
        "```",
        "",
        f"Data: units `{d.get('units')}`; model units = (data - offset) / scale with scale "
        f"{d.get('units_scale')}, offset {d.get('units_offset')}; value range (model units) "
        f"{d.get('value_range')}. `mimcast predict --model FOLDER` takes data units"
        + (f"; it fits a video's frames by {d[VIDEO_FIT]}, as in training." if VIDEO_FIT in d
           else "."),
    ]  # fmt: skip
    lines += _metrics_lines(run, cfg.eval.split)
    config = yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip()
    return "\n".join([*lines, "", "## Training config", "", "```yaml", config, "```", ""])


def _metrics_lines(run: RunDir, split: str) -> list[str]:
    try:
        metrics = json.loads(run.eval_dir(split).metrics_json.read_text())
    except (OSError, ValueError):
        return ["", "Not evaluated yet (`mimcast evaluate`)."]
    mean = metrics["mean"]
    names = [k for k in ("mse", "mae", "ssim", "psnr", "mse_units") if k in mean]
    return [
        "",
        f"## Test metrics ({split} split, {metrics['n_sequences']} sequences, mean over "
        f"{metrics['n_frames']} predicted frames; MSE/MAE summed over a frame's pixels)",
        "",
        "| " + " | ".join(names) + " |",
        "|---" * len(names) + "|",
        "| " + " | ".join(f"{mean[k]:.4g}" for k in names) + " |",
    ]


def export_hub(
    run_dir: str | Path, output: Path, *, which: str = "best", overwrite: bool = False
) -> Forecaster:
    """A run's checkpoint as a Hub folder; returns the model (with its data spec)."""
    run = RunDir(run_dir)
    model, step = load_run_model(run, which, "cpu")
    fit = trained_video_fit(run.read_config())
    model.data = {**run.read_data_spec().to_dict(), **({VIDEO_FIT: fit} if fit else {})}
    card = model_card(run, model, step, Path(output))
    save_hub_folder(model, Path(output), card=card, overwrite=overwrite)
    return model


def push(model: Forecaster, repo_id: str, card: str) -> str:
    """Upload to the Hub (needs a network and a token); one line when it fails."""
    try:
        url = model.push_to_hub(repo_id, config=hub_config(model), model_card_kwargs={"text": card})
    except Exception as e:  # noqa: BLE001 - network, authentication, permissions
        raise StorageError(f"cannot push to the Hub repository {repo_id!r}: {e}") from e
    return str(url)


def _folder(source: str | Path, *, revision: str | None, token: str | bool | None) -> Path:
    """A local folder, or the Hub repository's files downloaded to the local cache."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path} is not a model folder (config.json, {WEIGHTS})")
        return path
    if not _HUB_ID.fullmatch(str(source)):
        raise CheckpointError(f"{source}: no such folder, nor a Hub id such as user/model")
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                str(source), revision=revision, token=token, allow_patterns=list(FILES)
            )
        )
    except Exception as e:  # noqa: BLE001 - offline, unknown repository, authentication
        raise CheckpointError(
            f"cannot download {str(source)!r} from the Hugging Face Hub ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]}); a local folder works offline"
        ) from e


def from_pretrained(
    source: str | Path,
    *,
    device: str = "cpu",
    revision: str | None = None,
    token: str | bool | None = None,
) -> Forecaster:
    """A model from a folder in the Hub's layout, or from a Hub id ("user/name")."""
    folder = _folder(source, revision=revision, token=token)
    config = read_hub_config(folder)
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS}")
    try:  # huggingface_hub's own loading path, with Forecaster's strict loading step
        model = Forecaster.from_pretrained(folder, **config)
    except MimcastError:
        raise
    except Exception as e:  # noqa: BLE001 - the hub's loader on a damaged folder
        raise CheckpointError(f"cannot load the model in {folder}: {e}") from e
    return model.to(device).eval()


def predict_hub(source: str | Path, request: PredictRequest, *, device: str = "cpu") -> np.ndarray:
    """`predict --model`: forecast with a Hub folder's model, in its data's units, a video
    context fitted as its training videos were."""
    request.check()  # before a download
    model = from_pretrained(source, device=device)
    if model.data is None:
        raise ConfigError(f"--model {source}: its config.json has no data spec (units)")
    fit = model.data.get(VIDEO_FIT)
    if fit is not None:
        request = replace(request, video_fit=fit)
    return predict_with(model, DataSpec.from_dict(model.data, str(source)), request)
