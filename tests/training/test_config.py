"""Config precedence (defaults < preset < file < flags), key and type checking."""

from __future__ import annotations

import pytest

import mimcast
from mimcast.errors import ConfigError
from mimcast.training.config import config_from_dict, parse_set, resolve_config
from mimcast.training.presets import PRESETS


def test_precedence(tmp_path) -> None:
    default = resolve_config(None)
    assert default.train.steps == 100_000 and default.model == mimcast.ModelConfig()
    quick = resolve_config("quick")
    assert quick.train.steps == PRESETS["quick"]["train"]["steps"]
    assert list(quick.model.hidden) == PRESETS["quick"]["model"]["hidden"]
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  steps: 77\n  lr: 0.01\nmodel:\n  hidden: [8, 8]\n")
    from_file = resolve_config("quick", f)
    assert (from_file.train.steps, from_file.train.lr, from_file.model.hidden) == (77, 0.01, (8, 8))
    assert from_file.train.precision == "bf16-mixed"  # still the preset's
    flags = resolve_config("quick", f, {"train": {"steps": 5}, **parse_set(["model.hidden=[4]"])})
    assert (flags.train.steps, flags.train.lr, flags.model.hidden) == (5, 0.01, (4,))


def test_paper_presets() -> None:
    for name in ("mmnist", "kth", "taxibj"):
        cfg = resolve_config(name)
        assert cfg.model.hidden == (64,) * 4 and cfg.model.filter_size == 5
        assert cfg.train.lr == 1e-3 and cfg.train.batch_size == 8 and cfg.train.steps == 100_000
        assert cfg.model.layer_norm
    assert resolve_config("mmnist").model.patch_size == 4
    assert resolve_config("taxibj").model.patch_size == 2
    assert resolve_config("taxibj").train.sampling.kind == "none"
    assert resolve_config("kth").data.eval_options == {"seq_len": 30}
    # validation never uses the test split (the reference code's protocol does)
    assert resolve_config("kth").data.options["val_persons"] == [16]
    assert resolve_config("taxibj").data.options["val_days"] == 14
    assert resolve_config("mmnist").train.sampling.eta_decay == 2e-5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train": {"stepz": 3}}, "unknown config key train.stepz"),
        ({"trian": {"steps": 3}}, "unknown config key trian"),
        ({"train": {"steps": "ten"}}, "train.steps must be an integer"),
        ({"train": {"steps": 2.5}}, "train.steps must be an integer"),
        ({"model": {"layer_norm": 1}}, "model.layer_norm must be true or false"),
        ({"model": {"hidden": 64}}, "model.hidden must be a list"),
        ({"model": {"hidden": [64, "a"]}}, r"model.hidden\[1\] must be an integer"),
        ({"train": {"precision": "fp8"}}, "train.precision must be"),
        ({"train": {"steps": 0}}, "train.steps must be >= 1"),
        ({"train": {"seed": -1}}, "train.seed must be >= 0"),
        ({"train": {"lr": float("inf")}}, "train.lr must be a finite number"),
        ({"train": {"sampling": {"eta_start": 5}}}, r"train.sampling.eta_start must be <= 1"),
        ({"train": {"sampling": {"eta_decay": -1}}}, r"train.sampling.eta_decay must be >= 0"),
        ({"eval": {"show": -1}}, "eval.show must be >= 0"),
        ({"data": {"num_workers": -2}}, "data.num_workers must be >= 0"),
        ({"model": {"height": 64}}, "model.height is not a setting here"),
        ({"model": {"name": "mimo"}}, "unknown model 'mimo'"),
    ],
)
def test_bad_keys_and_types(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config("quick", None, overrides)


def test_bad_files_and_set_items(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_config("quick", tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config("quick", bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config("quick", evil)
    with pytest.raises(ConfigError, match="expects key=value"):
        parse_set(["train.steps"])
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        resolve_config("fast")


def test_round_trip() -> None:
    cfg = resolve_config("kth")
    assert config_from_dict(cfg.to_dict()) == cfg


def test_numbers_with_an_exponent_and_no_dot_are_numbers(tmp_path) -> None:
    """PyYAML reads 4e-3 as a string (YAML 1.1); a float setting takes it as the number."""
    assert resolve_config("quick", None, parse_set(["train.lr=4e-3"])).train.lr == 4e-3
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 5E-4\n  sampling:\n    eta_decay: 2e-5\n")
    cfg = resolve_config("quick", f)
    assert (cfg.train.lr, cfg.train.sampling.eta_decay) == (5e-4, 2e-5)
    with pytest.raises(ConfigError, match="train.steps must be an integer"):
        resolve_config("quick", None, parse_set(["train.steps=1e3"]))


def test_a_data_kind_brings_its_run_defaults_and_drops_the_presets_data_options() -> None:
    from mimcast.data.video import VideoDataset

    video = resolve_config(overrides={"data": {"name": "video", "root": "clip.mp4"}})
    assert video.data.options == VideoDataset.run_defaults["data"]["options"]  # no MNIST
    assert video.model.residual is False  # measured: the residual form collapsed on 2 clips
    assert video.model.hidden == (32, 32, 32, 32)  # the rest of the preset holds
    mnist = resolve_config()
    assert mnist.data.options == {"seq_len": 20, "context_len": 10}
    assert mnist.model.residual is False  # the paper's presets are unchanged
    told = resolve_config(
        overrides={
            "data": {"name": "video", "options": {"max_size": 32}},
            "model": {"residual": True},
        }
    )
    assert told.data.options["max_size"] == 32 and told.model.residual is True  # flags win
    assert told.data.options["stride"] == 1
