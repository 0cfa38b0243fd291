"""The free-running forecast as one ONNX graph, for ONNX Runtime and other runtimes.

The graph takes `context` (batch, context_len, C, H, W) and returns `forecast` (batch,
horizon, C, H, W). What it fixes: the context length and the horizon (the time loop is
unrolled into the graph) and the frame shape; the batch size stays dynamic. In data units
(the default) the graph maps the context to model units and the forecast back, and clips the
forecast to the data's range, as `mimcast predict` does; in model units it takes and gives the
model's own values (clipped to the model units' range).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from mimcast.data import DataSpec
from mimcast.errors import ConfigError, MimcastError
from mimcast.fs import storage_error, temp_name
from mimcast.models import Forecaster
from mimcast.runs.predict import MAX_HORIZON, load_run_model
from mimcast.runs.rundir import RunDir

UNITS = ("data", "model")


class ForecastGraph(nn.Module):
    """context -> forecast in data or model units; the module torch.onnx exports."""

    def __init__(self, model: Forecaster, spec: DataSpec, *, horizon: int, units: str) -> None:
        super().__init__()
        self.model, self.horizon, self.units = model, horizon, units
        scale, offset = (torch.as_tensor(v, dtype=torch.float32) for v in spec._params())
        self.register_buffer("scale", scale)
        self.register_buffer("offset", offset)
        self.lo, self.hi = spec.value_range

    def forward(self, context: Tensor) -> Tensor:
        x = (context - self.offset) / self.scale if self.units == "data" else context
        y = self.model.forecast(x, self.horizon).clamp(self.lo, self.hi)
        return y * self.scale + self.offset if self.units == "data" else y


def check_request(*, context: int, horizon: int, units: str) -> None:
    # the graph unrolls every context step as it does every predicted one: the same cap
    if not isinstance(context, int) or not 1 <= context <= MAX_HORIZON:
        raise ConfigError(f"--context must be in [1, {MAX_HORIZON}] frames, got {context}")
    if not isinstance(horizon, int) or not 1 <= horizon <= MAX_HORIZON:
        raise ConfigError(f"--horizon must be in [1, {MAX_HORIZON}], got {horizon}")
    if units not in UNITS:
        raise ConfigError(f"--units must be data or model, got {units!r}")


def check_exporter() -> None:
    """torch's ONNX exporter needs onnx and onnxscript, which mimcast does not require."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"ONNX export needs {' and '.join(missing)}: pip install 'mimcast[onnx]' "
            "(or -e '.[onnx]' in a checkout)"
        )


def export_graph(
    model: Forecaster, spec: DataSpec, output: Path, *, context: int, horizon: int, units: str
) -> Path:
    """Export `model`'s forecast of `horizon` frames after `context` frames to `output`."""
    check_request(context=context, horizon=horizon, units=units)
    graph = ForecastGraph(model.float().eval(), spec, horizon=horizon, units=units).eval()
    example = torch.zeros(2, context, *spec.frame_shape)
    tmp = temp_name(output)
    from torch.export import Dim

    exporter_log = logging.getLogger("torch.onnx")  # "torchvision is not installed" and such
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own internals
            torch.onnx.export(
                graph,
                (example,),
                str(tmp),
                input_names=["context"],
                output_names=["forecast"],
                dynamo=True,
                dynamic_shapes={"context": {0: Dim("batch", min=1)}},
                external_data=False,  # one self-contained file (the weights are small)
                verbose=False,
            )
        os.replace(tmp, output)
    except OSError as e:
        raise storage_error(output, e) from e
    except Exception as e:  # noqa: BLE001 - the exporter's own errors: one line
        raise MimcastError(f"ONNX export failed: {type(e).__name__}: {e}") from e
    finally:
        exporter_log.setLevel(level)
        tmp.unlink(missing_ok=True)
    return output


def export_onnx(
    run_dir: str | Path,
    output: Path,
    *,
    context: int,
    horizon: int,
    units: str = "data",
    which: str = "best",
    overwrite: bool = False,
) -> Path:
    """A run's checkpoint as an ONNX forecast graph (see the module docstring)."""
    output = Path(output)
    check_request(context=context, horizon=horizon, units=units)
    check_exporter()
    if output.suffix != ".onnx":
        raise ConfigError(f"--output must end in .onnx, got {output}")
    if output.exists() and not overwrite:
        raise ConfigError(f"{output} exists: pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise ConfigError(f"output folder {output.parent} does not exist")
    run = RunDir(run_dir)
    model, _ = load_run_model(run, which, "cpu")
    return export_graph(
        model, run.read_data_spec(), output, context=context, horizon=horizon, units=units
    )
