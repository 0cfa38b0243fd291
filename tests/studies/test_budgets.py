"""Table 1 compares models "with comparable numbers of parameters" (Table 7 too): every model of a
study, at each budget (--preset cpu|paper), has MIM's parameter count there within 15%."""

from __future__ import annotations

import pytest
import torch

from mimcast.models import build_model
from mimcast.studies.experiments import StudyRequest, study_configs
from mimcast.studies.report import SIZES

MIM = {  # MIM's count in each table at each budget
    ("table1", "cpu"): 982_560, ("table1", "paper"): 10_674_368,
    ("table7", "cpu"): 966_176, ("table7", "paper"): 10_584_256,
}  # fmt: skip


def parameters(cfg, flows: int, size: int) -> int:
    m = cfg.model  # ST-ResNet's frames carry its period, trend and external inputs too
    channels = flows * (1 + m.stresnet_period + m.stresnet_trend) + m.stresnet_externals
    with torch.device("meta"):  # counts only: nothing is allocated
        model = build_model(m.with_frames((channels, size, size)))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_every_model_has_mims_budget_within_15_percent(preset: str) -> None:
    sized = set()
    for table, flows, size in (("table1", 1, 64), ("table7", 2, 32)):
        runs = study_configs(StudyRequest(table, preset, (0,)))
        counts = {label: parameters(cfg, flows, size) for label, _, cfg in runs}
        assert counts["mim"] == MIM[table, preset]
        sized |= set(counts)
        for label, n in counts.items():
            assert abs(n / counts["mim"] - 1) < 0.15, (table, label, n, counts["mim"])
    assert set(SIZES) <= sized  # every sized model is in a table


def test_sizes_apply_at_their_own_budget_only() -> None:
    cpu = {label: cfg for label, _, cfg in study_configs(StudyRequest("table1", "cpu", (0,)))}
    paper = {label: cfg for label, _, cfg in study_configs(StudyRequest("table1", "paper", (0,)))}
    assert cpu["dfn"].model.hidden == (36, 36, 72, 72, 144)
    assert paper["dfn"].model.hidden == (78, 78, 156, 156, 312)
    assert cpu["mim"].model.hidden == (32,) * 4 and paper["mim"].model.hidden == (64,) * 4
