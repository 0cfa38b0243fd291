"""Property: every command, given any invalid option value, exits 2 with one line, no
traceback, and changes no file in any folder it was pointed at.

The invalid values are generated from the settings themselves: for every key of every config
section, a value of the wrong type and each bound or choice its rule states, broken. The
targets are a mimcast run (with --overwrite, the worst case), a user's folder and a new path
for `train`; the run folder, the output folder and the report folder for the other commands.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import typing
from pathlib import Path

import numpy as np
import pytest

from mimcast import cli
from mimcast.models.config import FRAME_FIELDS, ModelConfig
from mimcast.settings import rule_of
from mimcast.training.config import DataSection, EvalSection, TrainSection
from mimcast.training.sampling import SamplingSchedule
from tests.helpers import NO_SUCH_GPU, assert_one_line_error, listing, run_cli
from tests.tiny import tiny_sets

SECTIONS = {
    "model": ModelConfig,
    "data": DataSection,
    "train": TrainSection,
    "train.sampling": SamplingSchedule,
    "eval": EvalSection,
}
TINY = tiny_sets()


def _wrong_type(hint) -> object:
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (typing.Union, type(int | None)):
        return _wrong_type(args[0])
    if origin in (list, tuple):
        return "not-a-list"
    if dataclasses.is_dataclass(hint):
        return 5
    return {int: "abc", float: "abc", bool: 3, str: [1, 2], dict: 7}[hint]


def invalid_values(cls, name: str) -> list:
    """A wrong type, and every bound or choice of the setting's rule, broken."""
    hint = typing.get_type_hints(cls)[name]
    if cls is ModelConfig and name in FRAME_FIELDS:
        return [8]  # taken from the data, refused as a setting
    values = [_wrong_type(hint)]
    rule = rule_of(cls, name)
    inner = typing.get_args(hint)[0] if typing.get_origin(hint) in (list, tuple) else hint
    number = float if inner is float else int
    if rule.choices is not None:
        values.append("no-such-choice")
    elif inner is str or typing.get_args(hint) == (str, type(None)):
        values.append("no-such-value")  # a name nothing is registered under, a missing path
    if rule.low is not None:
        values.append(number(rule.low) - (0.5 if number is float else 1))
    if rule.high is not None:
        values.append(number(rule.high) + 1)
    if rule.above is not None:
        values.append(number(rule.above))
    if number is float:
        values.append(float("inf"))
    if hint is dict:
        values.append({"no_such_option": 1})
    if typing.get_origin(hint) in (list, tuple) and values[1:]:
        values = [values[0], *[[v] for v in values[1:]]]  # bounds hold for each element
    return values


def _yaml(value) -> str:
    if isinstance(value, float) and value == float("inf"):
        return ".inf"
    return json.dumps(value)


def config_cases() -> list[tuple[str, str]]:
    out = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(typing.get_type_hints(cls)[f.name]):
                out.append((f"{section}.{f.name}", "5"))  # a scalar for a whole section
                continue
            out += [(f"{section}.{f.name}", _yaml(v)) for v in invalid_values(cls, f.name)]
    return out


CONFIG_CASES = config_cases()


def test_every_setting_has_invalid_values() -> None:
    keys = {k for k, _ in CONFIG_CASES}
    for section, cls in SECTIONS.items():
        assert {f"{section}.{f.name}" for f in dataclasses.fields(cls)} <= keys
    assert len(CONFIG_CASES) > 90


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prop")
    run = root / "run"
    assert cli.main(["train", "--run-dir", str(run), "--steps", "2", "--set", *TINY]) == 0
    user = root / "user"
    (user / "checkpoints").mkdir(parents=True)
    (user / "config.yaml").write_text("lr: 1\n")
    (user / "checkpoints" / "m.pt").write_bytes(b"weights")
    (user / "notes.txt").write_text("mine")
    ctx = root / "ctx.npy"
    np.save(ctx, np.full((3, 1, 32, 32), 100.0, np.float32))
    outputs = root / "outputs"
    outputs.mkdir()
    (outputs / "existing.npy").write_bytes(b"keep")
    return {"root": root, "run": run, "user": user, "ctx": ctx, "outputs": outputs}


def _snapshot(folders: dict[str, Path]) -> dict:
    return {k: listing(p) for k, p in folders.items() if p.is_dir() and k != "root"}


def _check(capsys, folders, args, new: Path | None = None) -> str:
    """The refusal's one line, once checked: exit 2, no traceback, nothing touched."""
    before = _snapshot(folders)
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, "")
    assert _snapshot(folders) == before, args
    assert new is None or not new.exists(), args
    return err.strip()


def _names_the_setting(line: str, item: str) -> bool:
    """The refusal of `--set KEY=VALUE` names the key, or (a registry's refusal) the value."""
    key, value = item.split("=", 1)
    return key in line or any(w in line for w in re.findall(r"[a-z_-]{3,}", value))


@pytest.mark.parametrize(("key", "value"), CONFIG_CASES, ids=[f"{k}={v}" for k, v in CONFIG_CASES])
def test_train_refuses_every_invalid_setting_and_touches_nothing(key, value, folders, capsys):
    item = f"{key}={value}"
    new = folders["root"] / "new-run"
    for target, flags in ((folders["run"], ["--overwrite"]), (folders["user"], ["--overwrite"]),
                          (new, [])):  # fmt: skip
        _check(capsys, folders, ["train", "--run-dir", target, "--steps", 2, *flags, "--set",
                                 *TINY, item], new)  # fmt: skip


def _flag_cases(f: dict[str, Path]) -> dict[str, list[list]]:
    """Per command: its valid arguments, then invalid values of each of its flags."""
    out, ctx = f["outputs"], f["ctx"]
    return {
        "evaluate": [
            ["--split", "nope"], ["--checkpoint", "nope"], ["--device", "gpu"],
            ["--device", NO_SUCH_GPU], ["--data", "nope"], ["--data-root", f["root"] / "none"],
            ["--compare", f["root"] / "none"], ["--run-dir", f["user"]],
            ["--run-dir", f["root"] / "none"], ["--bogus"], ["--baselines", "nope"],
        ],
        "predict": [
            ["--input", f["root"] / "none.npy"], ["--input", f["user"] / "notes.txt"],
            ["--horizon", "abc"], ["--horizon", 0], ["--horizon", -3], ["--horizon", 100_000],
            ["--output", out / "p.txt"], ["--output", f["root"] / "none" / "p.npy"],
            ["--output", out / "existing.npy"], ["--output", ctx, "--overwrite"],
            ["--gif", out / "p.png"], ["--png", out / "p.gif"], ["--checkpoint", "nope"],
            ["--device", "gpu"], ["--device", NO_SUCH_GPU], ["--run-dir", f["user"]],
        ],
        "bench": [
            ["--model", "nope"], ["--hidden", 0], ["--hidden", "abc"], ["--layers", 0],
            ["--layers", 1], ["--size", 0], ["--batch", 0], ["--seq-len", 0],
            ["--context-len", 0], ["--steps", 0], ["--json", out / "existing.npy"],
            ["--json", f["root"] / "none" / "b.json"], ["--set", "train.steps=1"],
            *[["--set", f"model.{k.split('.', 1)[1]}={v}"] for k, v in CONFIG_CASES
              if k.startswith("model.") and not k.endswith(FRAME_FIELDS)],
        ],
        "experiment": [
            ["--preset", "nope"], ["--seeds", -1], ["--seeds", 0, 0], ["--steps", 0],
            ["--steps", "abc"], ["--data", "nope"], ["--device", "gpu"],
            ["--report-dir", f["user"]], ["--out", out / "existing.npy"],
            *[["--set", f"{k}={v}"] for k, v in CONFIG_CASES[::3]],
        ],
    }  # fmt: skip


BASE = {
    "evaluate": lambda f: ["evaluate", "--run-dir", f["run"]],
    "predict": lambda f: ["predict", "--run-dir", f["run"], "--input", f["ctx"], "--horizon", 2,
                          "--output", f["outputs"] / "p.npy"],
    "bench": lambda f: ["bench", "--steps", 1, "--json", f["outputs"] / "b.json"],
    "experiment": lambda f: ["experiment", "table3", "--seeds", 0, "--steps", 1, "--out",
                             f["root"] / "study", "--set", *TINY],
}  # fmt: skip


@pytest.mark.parametrize("command", list(BASE))
def test_every_command_refuses_invalid_flags_and_touches_nothing(command, folders, capsys):
    cases = _flag_cases(folders)[command]
    assert len(cases) >= 8
    for case in cases:
        args = BASE[command](folders)
        flag = case[0]
        if flag != "--set" and flag in args:  # replace the base value of that flag; a --set
            i = args.index(flag)  # item comes after the base's own: the last value wins
            del args[i : i + 2]
        line = _check(capsys, folders, [*args, *case], folders["root"] / "study")
        if flag == "--set" and case[1] != "train.steps=1":  # bench: "model.* keys only"
            assert _names_the_setting(line, case[1]), (case, line)
    assert not (folders["outputs"] / "p.npy").exists()


@pytest.mark.parametrize("command", ["evaluate", "predict", "experiment"])  # bench: test_bench
def test_every_base_command_alone_succeeds(command, folders, capsys) -> None:
    """The refusals above come from the one flag changed: the base command itself runs."""
    made = {"predict": folders["outputs"] / "p.npy", "experiment": folders["root"] / "study"}
    made = made.get(command)
    code, _, err = run_cli(capsys, *BASE[command](folders))
    try:
        assert code == 0, err
        assert made is None or made.exists()
    finally:  # the refusal tests expect these outputs absent
        if made is not None and made.is_dir():
            shutil.rmtree(made)
        elif made is not None:
            made.unlink(missing_ok=True)


def test_experiment_name_and_a_user_report_folder(folders, capsys) -> None:
    shutil.rmtree(folders["root"] / "study", ignore_errors=True)
    _check(capsys, folders, ["experiment", "table9"], folders["root"] / "study")
