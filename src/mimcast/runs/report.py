"""A run's report.md: the metrics table per predicted frame, the curves and the pictures."""

from __future__ import annotations

from pathlib import Path

from mimcast.evaluation.skill import baseline_notes, skill_rows
from mimcast.runs.rundir import RunDir
from mimcast.training.config import RunConfig

_TABLE = ("mse", "mae", "mse_pixel", "ssim", "ssim_legacy", "psnr", "mse_units", "mae_units")


def table_metrics(result: dict) -> list[str]:
    """The metrics shown in tables: the main ones present, then any CSI/POD/FAR."""
    names = [k for k in _TABLE if k in result["per_frame"]]
    return names + [k for k in result["per_frame"] if "@" in k]


def run_report(
    run: RunDir, *, split: str, result: dict, pictures: list[Path], cfg: RunConfig
) -> str:
    names = table_metrics(result)
    ckpt = result["checkpoint"]
    lines = [
        f"# {cfg.model.name} on {cfg.data.name} ({split})",
        "",
        f"Checkpoint: {ckpt['which']} (step {ckpt['step']}); {result['n_sequences']} sequences, "
        f"{result['n_frames']} predicted frames each.",
        "MSE/MAE are summed over the pixels of a frame and averaged over sequences (the papers' "
        "convention); *_pixel are per pixel; SSIM uses data_range 1 (ssim_legacy: the reference "
        "code's 7x7 uniform window with data_range 2, for published tables only).",
        "",
        "| frame | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for i in range(result["n_frames"]):
        cells = " | ".join(f"{result['per_frame'][k][i]:.4g}" for k in names)
        lines.append(f"| {i + 1} | {cells} |")
    lines.append("| **mean** | " + " | ".join(f"**{result['mean'][k]:.4g}**" for k in names) + " |")
    lines.append("")
    if "baselines" in result:
        lines += _against_baselines(result)
    lines += [f"![{p.stem}]({p.relative_to(run.path).as_posix()})" for p in pictures]
    return "\n".join(lines) + "\n"


def _against_baselines(result: dict) -> list[str]:
    """The verdict, then the model's MSE per lead time beside each baseline's with the skill."""
    header, rows = skill_rows(result)
    lines = [
        "## Against the trivial forecasts",
        "",
        f"**{result['verdict'][0].upper()}{result['verdict'][1:]}.**",
        "",
        "Skill = 1 - MSE model / MSE baseline, per lead time (above 0: the model is better), "
        "on the same sequences; the curve is framewise_skill.png.",
        "",
        "| frame | " + " | ".join(header) + " |",
        "|---" * (len(header) + 1) + "|",
    ]
    for i, row in enumerate(rows):
        label = "**mean**" if i == len(rows) - 1 else str(i + 1)
        lines.append(f"| {label} | " + " | ".join(f"{v:.4g}" for v in row) + " |")
    lines.append("")
    notes = baseline_notes(result)
    if notes:
        lines += [*(f"- {note}" for note in notes), ""]
    return lines
