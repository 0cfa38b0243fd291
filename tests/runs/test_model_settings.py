"""Settings a model cannot take, through the command line: one line, nothing written (the
models themselves run end to end in test_every_model_end_to_end.py)."""

from __future__ import annotations

import pytest

from tests.helpers import assert_one_line_error, listing, run_cli
from tests.tiny import tiny_sets


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["model.name=cdna", "model.residual=true"], "model 'cdna' has no residual form"),
        (["model.name=dfn", "model.variant=openstl"], "model 'dfn' has no 'openstl' variant"),
        (["model.name=dfn", "model.cdna_kernels=4"], "cdna_kernels applies to the 'cdna' model"),
        (["model.name=dfn", "model.dfn_filter_size=8"], "model.dfn_filter_size must be odd"),
        (["model.name=vpn", "model.hidden=[8,8,8,8]"], "decoder) widths, at most 3 numbers"),
        (["model.name=vpn", "model.hidden=[1]"], "must be at least 2"),
        (["model.name=mim", "model.vpn_decoder_blocks=3"], "applies to the 'vpn' model only"),
    ],
)
def test_settings_they_cannot_take_are_one_line(sets, message, tmp_path, capsys) -> None:
    before = listing(tmp_path)
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "run", "--steps", 1,
                           "--set", *tiny_sets(), *sets)  # fmt: skip
    assert_one_line_error(code, err, message)
    assert listing(tmp_path) == before
