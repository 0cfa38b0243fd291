"""Checkpoints: safetensors + JSON, atomic pointers, refusal of damaged or foreign files."""

from __future__ import annotations

import json

import pytest
import torch

import mimcast
from mimcast.errors import CheckpointError
from mimcast.models.weights import load_weights
from mimcast.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)


def tiny(**kw) -> mimcast.Forecaster:
    return mimcast.create_model("mim", in_channels=1, height=8, width=8, hidden=(4, 4), **kw)


def test_round_trip_with_optimizer(tmp_path) -> None:
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 4, 1, 8, 8), 2).sum().backward()
    opt.step()
    save_checkpoint(
        tmp_path, step=3, model=model, optimizer=opt, extra={"best_val": 1.5},
        pointers=("last", "best"),
    )  # fmt: skip
    ckpt = load_checkpoint(tmp_path, "last")
    assert ckpt.step == 3 and ckpt.extra["best_val"] == 1.5
    assert ckpt.model_config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.model[k], v)
    opt2 = torch.optim.Adam(tiny().parameters(), lr=1e-3)
    opt2.load_state_dict(ckpt.optimizer)
    for a, b in zip(opt.state_dict()["state"].values(), opt2.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path, "best")).eval()  # from it alone
    frames = torch.rand(1, 4, 1, 8, 8)
    torch.testing.assert_close(rebuilt(frames, 2), model.eval()(frames, 2), rtol=0, atol=0)


def test_pointers_and_garbage_collection(tmp_path) -> None:
    model = tiny()
    save_checkpoint(tmp_path, step=1, model=model, pointers=("last", "best"))
    save_checkpoint(tmp_path, step=2, model=model)
    save_checkpoint(tmp_path, step=3, model=model)
    assert load_checkpoint(tmp_path, "best").step == 1
    assert load_checkpoint(tmp_path, "last").step == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "step-0000001",
        "step-0000003",
    ]


def test_nan_weights_are_never_saved(tmp_path) -> None:
    model = tiny()
    save_checkpoint(tmp_path, step=1, model=model)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="step 2: refusing to save: weight .* is not finite"):
        save_checkpoint(tmp_path, step=2, model=model)
    assert load_checkpoint(tmp_path).step == 1


def test_truncated_tampered_and_foreign_checkpoints_are_refused(tmp_path) -> None:
    model = tiny()
    folder = save_checkpoint(tmp_path, step=1, model=model)
    tensors = folder / "tensors.safetensors"
    data = tensors.read_bytes()
    tensors.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="does not match its recorded hash"):
        load_checkpoint(tmp_path)
    tensors.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="does not match its recorded hash"):
        load_checkpoint(tmp_path)
    tensors.write_bytes(data)
    state = json.loads((folder / "state.json").read_text())
    (folder / "state.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path)
    (folder / "state.json").write_text(json.dumps({**state, "format": "pickle"}))
    with pytest.raises(CheckpointError, match="not a mimcast checkpoint"):
        load_checkpoint(tmp_path)
    (folder / "state.json").write_text(json.dumps(state))
    (tmp_path / "last.json").write_text(json.dumps({"dir": "../../etc"}))
    with pytest.raises(CheckpointError, match="is damaged: it names '../../etc'"):
        load_checkpoint(tmp_path)
    (tmp_path / "last.json").write_text(json.dumps({"dir": 5}))  # a corrupt pointer
    with pytest.raises(CheckpointError, match="is damaged: it names 5"):
        load_checkpoint(tmp_path)
    (tmp_path / "last.json").write_text(json.dumps({"dir": "step-0000009"}))
    with pytest.raises(CheckpointError, match="names a missing folder"):
        load_checkpoint(tmp_path)
    (tmp_path / "last.json").write_text(json.dumps({"dir": folder.name}))
    (folder / "state.json").write_text(json.dumps({**state, "step": "three"}))
    with pytest.raises(CheckpointError, match="is damaged: bad or missing 'step'"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no 'best' checkpoint"):
        load_checkpoint(tmp_path, "best")


def test_checkpoint_of_another_shape_is_refused(tmp_path) -> None:
    save_checkpoint(tmp_path, step=1, model=tiny())
    other = mimcast.create_model("mim", in_channels=1, height=8, width=8, hidden=(6, 6))
    with pytest.raises(CheckpointError, match="has shape .* the model expects"):
        load_weights(other, load_checkpoint(tmp_path).model, "x")
    pred = mimcast.create_model("predrnn", in_channels=1, height=8, width=8, hidden=(4, 4))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_weights(pred, load_checkpoint(tmp_path).model, "x")


def test_checkpoint_files_have_the_mode_the_umask_gives(tmp_path) -> None:
    import os
    import stat

    model = mimcast.create_model("convlstm", in_channels=1, height=8, width=8, hidden=(4,))
    old = os.umask(0o022)
    try:
        folder = save_checkpoint(tmp_path, step=1, model=model)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes  # safetensors alone would give 0600
