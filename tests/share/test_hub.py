"""Sharing models in the Hugging Face Hub's layout: save, load (a folder, a Hub id), refuse."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file

import mimcast
from mimcast.data.video import write_video
from tests.helpers import assert_one_line_error, listing, run_cli
from tests.tiny import tiny_sets


def test_save_pretrained_from_pretrained_gives_identical_predictions(run, tmp_path) -> None:
    model = mimcast.load_model(run)
    model.data = {"note": "anything JSON"}
    model.save_pretrained(tmp_path / "m", config={"model_config": model.config.to_dict(),
                                                  "data": None})  # fmt: skip
    again = mimcast.from_pretrained(tmp_path / "m")
    context = torch.rand(3, 3, 1, 32, 32)
    assert torch.equal(model.predict(context, 4), again.predict(context, 4))


def test_the_folder_is_the_hub_layout_read_by_huggingface_hub(run, exported) -> None:
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "config.json",
                                                           "model.safetensors"]  # fmt: skip
    config = json.loads((exported / "config.json").read_text())
    assert set(config) == {"model_config", "data"}
    assert config["model_config"]["hidden"] == [4, 4] and config["data"]["units_scale"] == [255.0]
    card = ModelCard.load(exported / "README.md")  # the hub's own parser
    assert card.data.library_name == "mimcast" and "## Test metrics" in card.text
    # huggingface_hub's own loading path (ModelHubMixin.from_pretrained), then our wrapper
    hub_loaded = mimcast.Forecaster.from_pretrained(exported)
    ours = mimcast.from_pretrained(exported)
    best = mimcast.load_model(run, "best")  # the run's best checkpoint
    assert set(load_file(exported / "model.safetensors")) == set(best.state_dict())
    context = torch.rand(2, 3, 1, 32, 32)
    for m in (hub_loaded, ours):
        assert torch.equal(m.predict(context, 3), best.predict(context, 3))
    assert ours.data == config["data"]


def test_predict_with_a_model_folder_equals_the_run(run, exported, tmp_path, capsys) -> None:
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.random.default_rng(0).uniform(0, 255, (3, 1, 32, 32)).astype(np.float32))
    outs = {}
    for source in (["--run-dir", run], ["--model", exported]):
        out = tmp_path / f"p{len(outs)}.npy"
        code, _, err = run_cli(capsys, "predict", *source, "--input", ctx, "--horizon", 4,
                               "--output", out)  # fmt: skip
        assert code == 0, err
        outs[source[0]] = np.load(out)
    np.testing.assert_array_equal(outs["--run-dir"], outs["--model"])


def _bad_folders(exported: Path, root: Path) -> dict[str, tuple[Path, str]]:
    cases = {}

    def copy(name: str) -> Path:
        return Path(shutil.copytree(exported, root / name))

    d = copy("unknown-key")
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "surprise": 1}))
    cases["unknown-key"] = (d, "unknown key(s) surprise")
    d = copy("unknown-model-key")
    cfg["model_config"]["depth"] = 3
    (d / "config.json").write_text(json.dumps(cfg))
    cases["unknown-model-key"] = (d, "unknown config key model.depth")
    d = copy("wrong-shape")
    weights = load_file(d / "model.safetensors")
    key = next(iter(weights))
    weights[key] = torch.zeros(3, 3)
    save_file(weights, d / "model.safetensors")
    cases["wrong-shape"] = (d, "has shape (3, 3), the model expects")
    d = copy("pickle-only")
    (d / "model.safetensors").unlink()
    torch.save(load_file(exported / "model.safetensors"), d / "pytorch_model.bin")
    cases["pickle-only"] = (d, "has no model.safetensors")
    d = copy("not-json")
    (d / "config.json").write_text("{oops")
    cases["not-json"] = (d, "not valid JSON")
    (root / "a-file").write_text("x")
    cases["a-file"] = (root / "a-file", "is not a model folder")
    return cases


def test_bad_model_folders_and_ids_are_one_line(exported, tmp_path, capsys, monkeypatch) -> None:
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.full((3, 1, 32, 32), 100.0, np.float32))
    cases = _bad_folders(exported, tmp_path / "bad")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # this machine has no network: say so at once
    cases["hub-id-offline"] = ("nobody/no-such-model", "cannot download 'nobody/no-such-model'")
    before = listing(tmp_path)
    for name, (source, message) in cases.items():
        code, _, err = run_cli(capsys, "predict", "--model", source, "--input", ctx, "--horizon",
                               2, "--output", tmp_path / "out.npy")  # fmt: skip
        assert_one_line_error(code, err, message)
        assert listing(tmp_path) == before, name


def test_export_refuses_to_replace_what_it_did_not_write(run, exported, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for out, flags, message in ((mine, ["--overwrite"], "holds files of another kind"),
                                (exported, [], "pass --overwrite")):  # fmt: skip
        before = listing(out)
        code, _, err = run_cli(capsys, "export", "--run-dir", run, "--format", "hub",
                               "--output", out, *flags)  # fmt: skip
        assert_one_line_error(code, err, message)
        assert listing(out) == before


def test_a_video_run_with_fit_crop_forecasts_the_same_through_its_export(tmp_path, capsys):
    """Non-square clips cropped to 16x16 in training: the export carries the fit, and
    `predict --model` crops a video context as `--run-dir` does (resizing would differ)."""
    yy, xx = np.mgrid[:20, :36]
    frames = [128 + 100 * np.sin((xx + 0.5 * yy + 2 * k) / 3.0) for k in range(80)]
    clip = tmp_path / "wide.mp4"
    write_video(clip, np.stack(frames).astype(np.uint8)[:, None], fps=8)
    video = {"seq_len": 6, "context_len": 3, "size": [16, 16], "fit": "crop"}
    sets = [s for s in tiny_sets() if not s.startswith("data.")]  # the tiny model and training
    sets += [f"data.options.{k}={json.dumps(v)}" for k, v in video.items()]
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "run", "--data", "video",
                           "--data-root", clip, "--steps", 2, "--set", *sets)  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli(capsys, "export", "--run-dir", tmp_path / "run", "--format", "hub",
                           "--output", tmp_path / "hub")  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "hub" / "config.json").read_text())["data"]["video_fit"] == "crop"
    assert "fits a video's frames by crop" in (tmp_path / "hub" / "README.md").read_text()
    outs = {}
    for source in (["--run-dir", tmp_path / "run"], ["--model", tmp_path / "hub"]):
        out = tmp_path / f"p{len(outs)}.npy"
        code, _, err = run_cli(capsys, "predict", *source, "--input", clip, "--horizon", 3,
                               "--output", out)  # fmt: skip
        assert code == 0, err
        outs[source[0]] = np.load(out)
    np.testing.assert_array_equal(outs["--run-dir"], outs["--model"])


def test_the_weights_file_has_the_mode_of_the_others_under_the_umask(run, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        code, _, err = run_cli(capsys, "export", "--run-dir", run, "--format", "hub", "--output",
                               tmp_path / "m")  # fmt: skip
    finally:
        os.umask(old)
    assert code == 0, err
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "m").iterdir()}
    assert modes == dict.fromkeys(["README.md", "config.json", "model.safetensors"], 0o644)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755
