"""`mimcast bench --study NAME`: every model of a study at the size the study trains it, one table.

The models and sizes are the study's own (`mimcast experiment NAME --preset P`: each model sized
to MIM's parameter count at that preset), on frames of 1 x size x size, with the study's batch
size and sequence lengths. Each model is measured on the optimised path (bf16 mixed precision,
channels_last, batched input convolutions) in a fresh child process, as `mimcast bench` measures
one model: training and inference sequences/s, each phase's peak resident memory, and the
training step against its convolution-bound ceiling. The models run one after another, so
their ratios are of one run on one machine; the absolute numbers move with the CPU.
"""

from __future__ import annotations

from typing import Any

from mimcast.cli.bench import BenchConfig, measure_path, run_in_child
from mimcast.machine import describe, one_line
from mimcast.models import build_model


def study_bench_configs(
    study: str, preset: str, size: int, steps: int, device: str
) -> list[tuple[str, BenchConfig]]:
    """(label, BenchConfig) of every model of a study, as the study would train it."""
    from mimcast.studies.experiments import StudyRequest, study_configs

    runs = study_configs(StudyRequest(name=study, preset=preset, seeds=(0,)))
    out = []
    for label, _seed, cfg in runs:
        seq_len = int(cfg.data.options.get("seq_len", 20))
        context_len = int(cfg.data.options.get("context_len", 10))
        model = cfg.model.with_frames((1, size, size))
        bench = BenchConfig(model=model, device=device, batch=cfg.train.batch_size,
                            seq_len=seq_len, context_len=context_len, steps=steps)  # fmt: skip
        out.append((label, bench))
    return out


def run_model_table(configs: list[tuple[str, BenchConfig]]) -> dict[str, Any]:
    """Measure every model's optimised path, each in its own child process."""
    rows: dict[str, Any] = {}
    for label, cfg in configs:
        params = sum(p.numel() for p in build_model(cfg.model).parameters())
        measured = run_in_child(measure_path, (cfg.to_dict(), "optimised"), f"{label} optimised")
        rows[label] = {"parameters": params, "config": cfg.to_dict(), **measured}
    device = configs[0][1].device if configs else "cpu"
    return {"models": rows, "machine": describe(device)}


def format_model_table(result: dict[str, Any]) -> str:
    rows = [
        f"machine: {one_line(result['machine'])}",
        "",
        "| model | hidden | parameters | train seq/s | infer seq/s | train peak RSS MB "
        "| infer peak RSS MB | conv ceiling / train step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, m in result["models"].items():
        hidden = m["config"]["model"]["hidden"]
        rows.append(
            f"| {label} | {','.join(str(h) for h in hidden)} | {m['parameters'] / 1e6:.2f}M "
            f"| {m['train_seq_s']:.2f} | {m['infer_seq_s']:.2f} | {m['train_peak_rss_mb']:.0f} "
            f"| {m['infer_peak_rss_mb']:.0f} | {m['train_vs_ceiling']:.2f} |"
        )
    first = next(iter(result["models"].values()), None)
    if first is not None:
        c = first["config"]
        m = c["model"]
        rows.append(
            f"\nframes {m['in_channels']}x{m['height']}x{m['width']}, batch {c['batch']}, "
            f"{c['context_len']} -> {c['seq_len'] - c['context_len']}, {c['steps']} timed "
            "steps after 2 warm-up steps, each model in a fresh process"
        )
    return "\n".join(rows)
