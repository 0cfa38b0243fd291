"""OpenSTL parity: OpenSTL's own weights and outputs (float64), loaded through from_openstl."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mimcast
from tests.conftest import FIXTURES as FIXTURE_DIR
from tests.models import openstl_draws

FIXTURES = ("openstl_parity_ln0.npz", "openstl_parity_ln1.npz")
MODELS = ("convlstm", "predrnn", "mim")
# PredRNN++ and PredRNN-V2 (OpenSTL's GHU cannot run with layer norm: no such PredRNN++ fixture)
CASES = [(f, m) for f in FIXTURES for m in MODELS] + [
    ("openstl_parity_pp_ln0.npz", "predrnnpp"),
    ("openstl_parity_pp_ln0.npz", "predrnnv2"),
    ("openstl_parity_v2_ln1.npz", "predrnnv2"),
]


def load_fixture(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    return openstl_draws.load(FIXTURE_DIR / name)


def openstl_params(data: dict, model: str) -> dict[str, torch.Tensor]:
    """OpenSTL's state_dict of `model`, under OpenSTL's own names."""
    prefix = f"{model}/param/"
    return {k[len(prefix) :]: torch.from_numpy(v) for k, v in data.items() if k.startswith(prefix)}


def model_kwargs(cfg: dict) -> dict:
    """create_model options describing the fixture's model."""
    return dict(
        in_channels=cfg["C"],
        height=cfg["H"],
        width=cfg["W"],
        patch_size=cfg["patch"],
        hidden=(cfg["hidden"],) * cfg["layers"],
        filter_size=cfg["filter"],
        layer_norm=bool(cfg["layer_norm"]),
    )


def openstl_model(cfg: dict, data, model: str) -> mimcast.Forecaster:
    return mimcast.from_openstl(model, openstl_params(data, model), **model_kwargs(cfg))


@pytest.mark.parametrize(("fixture", "model"), CASES)
@pytest.mark.parametrize("mask_kind", ("zero", "mixed"))
def test_matches_openstl(fixture: str, model: str, mask_kind: str, device) -> None:
    cfg, data = load_fixture(fixture)
    net = openstl_model(cfg, data, model).to(device)
    assert next(net.parameters()).dtype == torch.float64
    frames = torch.from_numpy(data["frames"]).to(device)
    mask = torch.from_numpy(data[f"{model}/{mask_kind}/mask"]).to(device)
    expected = torch.from_numpy(data[f"{model}/{mask_kind}/expected"]).to(device)
    aux: dict = {}
    with torch.no_grad():
        out = net(frames, context_len=cfg["pre"], mask=mask, aux=aux)
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() < 1e-9
    if model == "predrnnv2":  # the decoupling loss of the same forward pass
        assert (
            abs(aux["decoupling_loss"].item() - float(data[f"{model}/{mask_kind}/decouple_loss"]))
            < 1e-9
        )
    else:
        assert aux == {}


@pytest.mark.parametrize(("fixture", "model"), CASES[:3] + CASES[-3:-1])
def test_mixed_mask_changes_the_outputs(fixture: str, model: str) -> None:
    """The fixtures' two masks give different outputs, so the parity test sees the mask."""
    cfg, data = load_fixture(fixture)
    net = openstl_model(cfg, data, model)
    frames = torch.from_numpy(data["frames"])
    with torch.no_grad():
        zero = net(frames, cfg["pre"], torch.from_numpy(data[f"{model}/zero/mask"]))
        mixed = net(frames, cfg["pre"], torch.from_numpy(data[f"{model}/mixed/mask"]))
        free = net(frames, cfg["pre"], None)
    assert (zero - mixed).abs().max() > 1e-6
    torch.testing.assert_close(free, zero, rtol=0, atol=1e-12)  # mask None == all-zero mask


def test_unused_openstl_parameters_are_ignored_and_others_refused() -> None:
    cfg, data = load_fixture(FIXTURES[0])
    sd = openstl_params(data, "convlstm")
    kwargs = model_kwargs(cfg)
    assert any(".conv_o." in k for k in sd)  # defined by OpenSTL but never used
    mimcast.from_openstl("convlstm", sd, **kwargs)

    extra = dict(sd, **{"cell_list.0.surprise.weight": torch.zeros(1)})
    with pytest.raises(mimcast.CheckpointError, match="unexpected parameter 'cell_list.0.surprise"):
        mimcast.from_openstl("convlstm", extra, **kwargs)

    missing = {k: v for k, v in sd.items() if k != "cell_list.1.conv_h.0.weight"}
    with pytest.raises(mimcast.CheckpointError, match="lacks 1 parameter"):
        mimcast.from_openstl("convlstm", missing, **kwargs)

    shape_msg = r"has shape \(32, 4, 3, 3\).*expects \(32, 4, 5, 5\)"
    with pytest.raises(mimcast.CheckpointError, match=shape_msg):
        mimcast.from_openstl("convlstm", sd, **{**kwargs, "filter_size": 5})

    with pytest.raises(mimcast.CheckpointError, match="lacks 12 parameter.*layer_norm"):
        mimcast.from_openstl("convlstm", sd, **{**kwargs, "layer_norm": True})


def test_from_openstl_reads_a_pth_file_without_pickle_code(tmp_path) -> None:
    cfg, data = load_fixture(FIXTURES[1])
    sd = openstl_params(data, "mim")
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    net = mimcast.from_openstl("mim", path, **model_kwargs(cfg))
    frames = torch.from_numpy(data["frames"])
    expected = torch.from_numpy(data["mim/zero/expected"])
    with torch.no_grad():
        assert (net(frames, cfg["pre"]) - expected).abs().max() < 1e-9

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(mimcast.CheckpointError, match="cannot read OpenSTL checkpoint"):
        mimcast.from_openstl("mim", bad, in_channels=1, height=16, width=16)
    with pytest.raises(mimcast.CheckpointError, match="not found"):
        mimcast.from_openstl("mim", tmp_path / "nope.pth", in_channels=1, height=16, width=16)
