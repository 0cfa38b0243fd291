"""Table 1 compares models "with comparable numbers of parameters" (Table 7 too): every model of a
study, at each budget (--preset cpu|paper), has MIM's parameter count there within 15%."""

from __future__ import annotations

import pytest
import torch

from mimcast.models import build_model
from mimcast.studies.catalogue import SIZES
from mimcast.studies.experiments import StudyRequest, study_configs

MIM = {  # MIM's count in each table at each budget
    ("table1", "cpu"): 982_560, ("table1", "paper"): 10_674_368,
    ("table4", "cpu"): 982_560, ("table4", "paper"): 10_674_368,
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
    for table, flows, size in (("table1", 1, 64), ("table4", 1, 64), ("table7", 2, 32)):
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
    cpu_vpn, paper_vpn = cpu["vpn"].model, paper["vpn"].model  # the cpu budget halves the blocks
    assert (cpu_vpn.hidden, cpu_vpn.vpn_encoder_blocks, cpu_vpn.vpn_decoder_blocks) == ((60,), 4, 6)
    assert (paper_vpn.hidden, paper_vpn.vpn_encoder_blocks, paper_vpn.vpn_decoder_blocks) == (
        (94,), 8, 12,
    )  # fmt: skip
    assert cpu["mim"].model.hidden == (32,) * 4 and paper["mim"].model.hidden == (64,) * 4


def test_mcnet_has_its_papers_layout_and_loss_in_its_study() -> None:
    """Table 4 at the paper budget: MCNet on full frames with 3 x 3 convolutions and no norm
    (its paper's network at MIM's budget), trained on L2 + gradient difference; the other
    models keep the study's patch 4, filter 5, layer norm and L2."""
    runs = {label: cfg for label, _, cfg in study_configs(StudyRequest("table4", "paper", (0,)))}
    mcnet, mim = runs["mcnet"], runs["mim"]
    assert mcnet.model.hidden == (56, 112, 224) and mcnet.model.patch_size == 1
    assert mcnet.model.filter_size == 3 and not mcnet.model.layer_norm
    assert mcnet.train.loss == "mse+gdl"
    assert (mim.model.patch_size, mim.model.filter_size, mim.model.layer_norm) == (4, 5, True)
    assert {cfg.train.loss for label, cfg in runs.items() if label != "mcnet"} == {"mse"}
    assert mcnet.train.steps == mim.train.steps and mcnet.data == mim.data
