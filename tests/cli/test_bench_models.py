"""`mimcast bench --study NAME`: every model of a study, at the study's sizes, in one table."""

from __future__ import annotations

import dataclasses

from mimcast import ModelConfig
from mimcast.cli.bench import BenchConfig
from mimcast.cli.bench_models import format_model_table, run_model_table, study_bench_configs
from mimcast.studies.experiments import StudyRequest, get_study, study_configs

from ..helpers import assert_one_line_error
from ..helpers import run_cli as mimcast


def test_the_study_table_benches_every_model_as_the_study_trains_it() -> None:
    configs = study_bench_configs("table1", "cpu", size=64, steps=1, device="cpu")
    assert [label for label, _ in configs] == list(get_study("table1").models)
    trained = {label: cfg for label, _, cfg in study_configs(StudyRequest("table1", seeds=(0,)))}
    for label, bench in configs:
        run = trained[label]
        assert bench.model == run.model.with_frames((1, 64, 64))  # its size, variant, patch
        assert bench.batch == run.train.batch_size


def test_every_model_in_the_table_gets_its_own_row_with_its_parameter_count() -> None:
    base = ModelConfig(name="mim", in_channels=1, height=16, width=16, patch_size=4,
                       hidden=(4, 4), filter_size=3)  # fmt: skip
    configs = [
        (name, BenchConfig(model=dataclasses.replace(base, name=name, hidden=hidden), batch=2,
                           seq_len=6, context_len=3, steps=1, threads=1))
        for name, hidden in (("mim", (4, 4)), ("convlstm", (6,)))
    ]  # fmt: skip
    result = run_model_table(configs)
    assert list(result["models"]) == ["mim", "convlstm"]
    counts = {k: m["parameters"] for k, m in result["models"].items()}
    assert counts["mim"] != counts["convlstm"] and min(counts.values()) > 0
    for m in result["models"].values():
        assert m["train_seq_s"] > 0 and m["infer_seq_s"] > 0 and m["train_peak_rss_mb"] > 0
    text = format_model_table(result)
    rows = [line for line in text.splitlines() if line.startswith("| mim |")]
    assert len(rows) == 1 and f"{counts['mim'] / 1e6:.2f}M" in rows[0]
    assert "| convlstm | 6 |" in text and "frames 1x16x16, batch 2, 3 -> 3" in text
    assert "no AMX" in text or "(AMX)" in text  # the machine, next to every timing


def test_a_bad_study_bench_is_one_line(capsys) -> None:
    code, _, err = mimcast(capsys, "bench", "--study", "nope")
    assert_one_line_error(code, err, "unknown experiment 'nope'")
    code, _, err = mimcast(capsys, "bench", "--study", "table1", "--set", "model.hidden=[4]")
    assert_one_line_error(code, err, "--set do not apply")
