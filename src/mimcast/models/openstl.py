"""Load OpenSTL checkpoints: `from_openstl(name, state_dict_or_path, **model_kwargs)`.

OpenSTL's parameter names are mapped onto ours; the parameters it defines but never uses
(ConvLSTM `conv_o`/`conv_last`, MIMN `conv_last`) are dropped; anything else that is missing,
unexpected or of the wrong shape is refused with one message naming it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mimcast.errors import CheckpointError
from mimcast.models.factory import create_model
from mimcast.models.rollout import Forecaster

# OpenSTL module names -> ours, after the layer prefix. Sequential(conv, LayerNorm) becomes
# GateConv(conv, norm): ".0." -> ".conv.", ".1." -> ".norm.". The cells of ConvLSTM, PredRNN,
# PredRNN-V2, PredRNN++ and MIM's first layer use OpenSTL's own names.
_CELL = ("conv_x", "conv_h", "conv_m", "conv_o", "conv_last", "conv_c", "conv_c2m", "conv_om")
_MIM_BLOCK = {
    "conv_x_cc": "conv_x",
    "conv_t_cc": "conv_h",
    "conv_s_cc": "conv_m",
    "conv_last": "conv_last",
    "conv_x_concat": "mims.conv_x",
    "conv_h_concat": "mims.conv_h",
    "ct_weight": "mims.ct_weight",
    "oc_weight": "mims.oc_weight",
}
_MIMN = {
    "conv_x_concat": "mimn.conv_x",
    "conv_h_concat": "mimn.conv_h",
    "ct_weight": "mimn.ct_weight",
    "oc_weight": "mimn.oc_weight",
}
_TOP = {  # whole-model modules outside the layers
    "conv_last": "head",
    "gradient_highway.x_concat": "stack.highway.conv_x",  # PredRNN++'s GHU
    "gradient_highway.z_concat": "stack.highway.conv_z",
}
_NEVER_USED = r"$^"
_UNUSED = {  # parameters OpenSTL defines but never uses
    "convlstm": re.compile(r"cell_list\.\d+\.(conv_o|conv_last)\."),
    "mim": re.compile(r"stlstm_layer_diff\.\d+\.conv_last\."),
    "predrnn": re.compile(_NEVER_USED),
    "predrnnpp": re.compile(r"cell_list\.\d+\.conv_o\."),
    "predrnnv2": re.compile(_NEVER_USED),
}
_LAYER_KEY = re.compile(r"(cell_list|stlstm_layer|stlstm_layer_diff)\.(\d+)\.([a-z_0-9]+)(\..*)?")
_TOP_KEY = re.compile(r"(conv_last|adapter|gradient_highway\.[xz]_concat)(\..*)")


def _gate_conv(rest: str) -> str:
    """OpenSTL's nn.Sequential(conv, LayerNorm) children -> our GateConv's conv / norm."""
    return re.sub(r"^\.0\.", ".conv.", re.sub(r"^\.1\.", ".norm.", rest))


def _map_key(key: str, hidden: tuple[int, ...]) -> str | None:
    """Our parameter name for an OpenSTL one, or None when it has no counterpart."""
    if key.startswith("module."):  # saved from DataParallel / DDP
        key = key[len("module.") :]
    top = _TOP_KEY.fullmatch(key)
    if top is not None:
        if top.group(1) == "adapter":  # OpenSTL's one adapter, of the first layer's size
            return f"stack.adapters.{hidden[0]}{top.group(2)}"
        rest = top.group(2) if top.group(1) == "conv_last" else _gate_conv(top.group(2))
        return f"{_TOP[top.group(1)]}{rest}"
    m = _LAYER_KEY.fullmatch(key)
    if m is None:
        return None
    group, idx, module, rest = m.group(1), int(m.group(2)), m.group(3), _gate_conv(m.group(4) or "")
    if group == "cell_list" or (group == "stlstm_layer" and idx == 0):
        table, layer = dict(zip(_CELL, _CELL)), idx
    elif group == "stlstm_layer":
        table, layer = _MIM_BLOCK, idx
    else:  # MIM-N of block idx + 1
        table, layer = _MIMN, idx + 1
    if module not in table:
        return None
    return f"stack.layers.{layer}.{table[module]}{rest}"


def load_openstl_state_dict(source: dict[str, Tensor] | str | Path) -> dict[str, Tensor]:
    """An OpenSTL state_dict, given as a dict or as the path of a .pth checkpoint.

    Files are read with torch.load(weights_only=True): no code in them is ever executed.
    """
    if isinstance(source, dict):
        sd = source
    else:
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"OpenSTL checkpoint not found: {path}")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
            raise CheckpointError(f"cannot read OpenSTL checkpoint {path}: {e}") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]  # OpenSTL's training checkpoints wrap the weights
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise CheckpointError("OpenSTL checkpoint is not a state_dict of tensors")
    return sd


def from_openstl(
    name: str, state_dict_or_path: dict[str, Tensor] | str | Path, **model_kwargs: Any
) -> Forecaster:
    """Build the `openstl` variant of `name` and load OpenSTL weights into it.

    model_kwargs are create_model's (in_channels, height, width, patch_size, hidden,
    filter_size, layer_norm); they must describe the model the weights come from.
    """
    model_kwargs = {**model_kwargs, "variant": "openstl"}
    model = create_model(name, **model_kwargs)
    sd = load_openstl_state_dict(state_dict_or_path)
    dtypes = {v.dtype for v in sd.values() if v.is_floating_point()}
    if len(dtypes) == 1:  # keep the checkpoint's precision (float64 weights stay float64)
        model = model.to(dtypes.pop())
    ours = model.state_dict()
    mapped: dict[str, Tensor] = {}
    for key, value in sd.items():
        if _UNUSED[name].search(key):
            continue
        target = _map_key(key, model.config.hidden)
        if target is None or target not in ours:
            raise CheckpointError(
                f"unexpected parameter {key!r} in the OpenSTL checkpoint for {name!r} "
                "(is it the right model and layer_norm setting?)"
            )
        if tuple(value.shape) != tuple(ours[target].shape):
            raise CheckpointError(
                f"parameter {key!r} has shape {tuple(value.shape)}, the model built from the "
                f"given options expects {tuple(ours[target].shape)} (check hidden, patch_size, "
                "filter_size, height and width)"
            )
        mapped[target] = value.to(ours[target].dtype)
    missing = sorted(set(ours) - set(mapped))
    if missing:
        raise CheckpointError(
            f"the OpenSTL checkpoint lacks {len(missing)} parameter(s) of {name!r}, e.g. "
            f"{missing[0]!r} (is it the right model and layer_norm setting?)"
        )
    model.load_state_dict(mapped)
    return model
