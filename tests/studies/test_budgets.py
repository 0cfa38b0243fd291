"""Table 1 compares models "with comparable numbers of parameters": every model of a study, at
each budget (--preset cpu|paper), has MIM's parameter count there within 15%."""

from __future__ import annotations

import pytest
import torch

from mimcast.models import build_model
from mimcast.studies.experiments import StudyRequest, study_configs
from mimcast.studies.report import SIZES


def parameters(cfg) -> int:
    with torch.device("meta"):  # counts only: nothing is allocated
        model = build_model(cfg.model.with_frames((1, 64, 64)))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_every_table1_model_has_mims_budget_within_15_percent(preset: str) -> None:
    runs = study_configs(StudyRequest("table1", preset, (0,)))
    counts = {label: parameters(cfg) for label, _, cfg in runs}
    assert counts["mim"] == {"cpu": 982_560, "paper": 10_674_368}[preset]
    assert set(SIZES) <= set(counts)  # every sized model is in the table
    for label, n in counts.items():
        assert abs(n / counts["mim"] - 1) < 0.15, (label, n, counts["mim"])


def test_sizes_apply_at_their_own_budget_only() -> None:
    cpu = {label: cfg for label, _, cfg in study_configs(StudyRequest("table1", "cpu", (0,)))}
    paper = {label: cfg for label, _, cfg in study_configs(StudyRequest("table1", "paper", (0,)))}
    assert cpu["dfn"].model.hidden == (36, 36, 72, 72, 144)
    assert paper["dfn"].model.hidden == (78, 78, 156, 156, 312)
    cpu_vpn, paper_vpn = cpu["vpn"].model, paper["vpn"].model  # the cpu budget halves the blocks
    assert (cpu_vpn.hidden, cpu_vpn.vpn_encoder_blocks, cpu_vpn.vpn_decoder_blocks) == ((60,), 4, 6)
    assert (paper_vpn.hidden, paper_vpn.vpn_encoder_blocks, paper_vpn.vpn_decoder_blocks) == (
        (94,), 8, 12,
    )  # fmt: skip
    assert cpu["mim"].model.hidden == (32,) * 4 and paper["mim"].model.hidden == (64,) * 4
