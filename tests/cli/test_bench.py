"""`mimcast bench` end to end on a tiny config: every path measured, in its own process."""

from __future__ import annotations

import pytest

from mimcast import ModelConfig
from mimcast.cli.bench import BenchConfig, format_bench, run_bench


@pytest.fixture(scope="module")
def tiny_bench() -> dict:
    model = ModelConfig(
        name="mim", in_channels=1, height=16, width=16, patch_size=4, hidden=(4, 4),
        filter_size=3,
    )  # fmt: skip
    cfg = BenchConfig(
        model=model, batch=2, seq_len=6, context_len=3, steps=1, grad_checkpointing=True,
        threads=1,
    )  # fmt: skip
    return run_bench(cfg)


def test_bench_measures_every_path_and_their_ratio(tiny_bench) -> None:
    for path in ("optimised", "checkpointed", "plain_fp32"):
        m = tiny_bench[path]
        assert m["train_seq_s"] > 0 and m["infer_seq_s"] > 0
        assert 0 < m["train_peak_rss_mb"] <= m["peak_rss_mb"]
        assert 0 < m["infer_peak_rss_mb"] <= m["peak_rss_mb"]
        assert m["train_flops"] > 0 and m["infer_flops"] > 0
    o, p = tiny_bench["optimised"], tiny_bench["plain_fp32"]
    assert tiny_bench["ratio_train"] == pytest.approx(o["train_seq_s"] / p["train_seq_s"])
    # The same model and shapes: both paths do the same arithmetic.
    assert o["train_flops"] == p["train_flops"] and o["infer_flops"] == p["infer_flops"]
    assert o["conv_calls"] > 0 and o["conv_ceiling_train_s"] > 0


def test_checkpointing_recomputes_the_forward_in_backward(tiny_bench) -> None:
    o, c = tiny_bench["optimised"], tiny_bench["checkpointed"]
    assert c["train_flops"] > o["train_flops"]  # each step's forward runs again in backward
    assert c["infer_flops"] == o["infer_flops"]  # inference stores nothing either way


def test_bench_report_names_every_path(tiny_bench) -> None:
    text = format_bench(tiny_bench)
    assert "optimised + activation checkpointing" in text
    assert "plain eager fp32" in text and "% of the ceiling" in text
    assert "| train peak RSS MB | infer peak RSS MB |" in text
    assert "3->3" in text and "mim (paper) 2x4, filter 3" in text  # the config measured
    assert "no AMX" in text or "(AMX)" in text  # the machine, next to every timing
