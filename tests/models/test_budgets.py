"""Table 1 compares models "with comparable numbers of parameters": the sizes that give each
model MIM's budget at the CPU study preset (64 x 64 frames, patch 4, filter 3; MIM 4 x 32)."""

from __future__ import annotations

import pytest

import mimcast

SIZES = {  # model -> its model section at the CPU preset, and its parameters there
    "fclstm": ({"hidden": (48,)}, 996_688),  # one layer, as Srivastava et al.'s predictor
    "trajgru": ({"hidden": (24, 36, 36)}, 927_084),  # 3 levels, the paper's 64:96:96, L = 13
}


def cpu_preset_parameters(name: str, **model) -> int:
    frames = dict(in_channels=1, height=64, width=64, patch_size=4, filter_size=3)
    return sum(p.numel() for p in mimcast.create_model(name, **frames, **model).parameters())


@pytest.mark.parametrize("name", sorted(SIZES))
def test_each_model_has_mims_budget_within_15_percent(name: str) -> None:
    mim = cpu_preset_parameters("mim", hidden=(32,) * 4)
    assert mim == 982_560
    model, count = SIZES[name]
    assert cpu_preset_parameters(name, **model) == count
    assert abs(count / mim - 1) < 0.15
