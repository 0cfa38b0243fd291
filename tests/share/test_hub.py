"""Sharing models in the Hugging Face Hub's layout: save, load (a folder, a Hub id), refuse."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import stat
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard, RepoUrl
from huggingface_hub.errors import RepositoryNotFoundError
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


# ---------------- the Hub itself: a local stand-in at huggingface_hub's boundary (no network)
class LocalHub:
    """The two Hub calls mimcast makes through huggingface_hub, answered from a folder:
    HfApi.create_repo / upload_folder (push_to_hub) and snapshot_download (loading an id)."""

    def __init__(self, root: Path) -> None:
        self.root, self.calls = root, []

    def create_repo(self, api, repo_id: str, **kwargs):
        self.calls.append(("create_repo", repo_id))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, api, *, repo_id: str, folder_path, **kwargs) -> str:
        self.calls.append(("upload_folder", repo_id))
        shutil.copytree(folder_path, self.root / repo_id, dirs_exist_ok=True)
        return f"https://huggingface.co/{repo_id}/commit/local"

    def snapshot_download(self, repo_id: str, *, allow_patterns=None, **kwargs) -> str:
        self.calls.append(("snapshot_download", repo_id))
        repo = self.root / repo_id
        if not repo.is_dir():
            raise RepositoryNotFoundError(f"404: {repo_id}")
        out = self.root.parent / "downloads" / repo_id
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for f in repo.iterdir():
            if allow_patterns is None or any(fnmatch.fnmatch(f.name, p) for p in allow_patterns):
                shutil.copy2(f, out / f.name)
        return str(out)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> LocalHub:
    stand_in = LocalHub(tmp_path / "hub")
    monkeypatch.setattr(HfApi, "create_repo", lambda api, **kw: stand_in.create_repo(api, **kw))
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kw: stand_in.upload_folder(api, **kw))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", stand_in.snapshot_download)
    return stand_in


def test_push_to_hub_then_load_by_its_id(run, hub, tmp_path, capsys) -> None:
    out = tmp_path / "tiny-mim"
    code, stdout, err = run_cli(capsys, "export", "--run-dir", run, "--format", "hub", "--output",
                                out, "--push-to-hub", "someone/tiny-mim")  # fmt: skip
    assert code == 0, err
    assert "pushed: https://huggingface.co/someone/tiny-mim" in stdout
    pushed = tmp_path / "hub" / "someone" / "tiny-mim"
    assert {f.name for f in pushed.iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    read = lambda f: json.loads(f.read_text())  # noqa: E731 - what was pushed was exported
    assert read(pushed / "config.json") == read(out / "config.json")
    assert (pushed / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    card = (out / "README.md").read_text()
    assert card.split("---")[-1].strip() in (pushed / "README.md").read_text()
    ctx = tmp_path / "ctx.npy"
    np.save(ctx, np.random.default_rng(0).uniform(0, 255, (3, 1, 32, 32)).astype(np.float32))
    preds = {}
    for source in (["--run-dir", run], ["--model", "someone/tiny-mim"]):
        target = tmp_path / f"p{len(preds)}.npy"
        code, _, err = run_cli(capsys, "predict", *source, "--input", ctx, "--horizon", 3,
                               "--output", target)  # fmt: skip
        assert code == 0, err
        preds[source[0]] = np.load(target)
    np.testing.assert_array_equal(preds["--model"], preds["--run-dir"])
    model = mimcast.from_pretrained("someone/tiny-mim")
    want = mimcast.load_model(run).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    assert [c for c in hub.calls if c[0] == "snapshot_download"] == [
        ("snapshot_download", "someone/tiny-mim")] * 2  # fmt: skip
    code, _, err = run_cli(capsys, "predict", "--model", "someone/other", "--input", ctx,
                           "--horizon", 3, "--output", tmp_path / "none.npy")  # fmt: skip
    assert_one_line_error(code, err, "cannot download 'someone/other'")
    assert not (tmp_path / "none.npy").exists()
