"""The newer models train, evaluate and log on every data set, through the command line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.data.writers import write_kth, write_taxibj_root
from tests.helpers import run_cli
from tests.tiny import tiny_sets

NO_DATA = [s for s in tiny_sets() if not s.startswith("data.options")]
WINDOW = ["data.options.seq_len=6", "data.options.context_len=3"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, tuple[list, list[str]]]:
    """Per data set: (--data and --data-root flags, its --set items)."""
    root = tmp_path_factory.mktemp("datasets")
    seq = np.random.default_rng(0).integers(0, 256, (6, 12, 32, 32), dtype=np.uint8)
    np.save(root / "mnist_test_seq.npy", seq)
    np.save(root / "series.npy", np.random.default_rng(1).random((80, 16, 16)).astype(np.float32))
    write_kth(root / "kth", {"boxing": [1, 2, 17]}, frames=24, size=32)
    write_taxibj_root(root / "taxibj", days=6)
    mmnist = ["data.options.num_sequences=8", "data.options.canvas=32", *WINDOW]
    return {
        "mmnist": (["--data", "mmnist"], mmnist),
        "mmnist-accel": (["--data", "mmnist-accel"], mmnist),
        "mmnist-file": (
            ["--data", "mmnist-file", "--data-root", root / "mnist_test_seq.npy"],
            [*WINDOW, "data.options.fractions=[0.5,0.25,0.25]"],
        ),
        "kth": (
            ["--data", "kth", "--data-root", root / "kth"],
            [*WINDOW, "data.options.image_size=32", "data.eval_options.seq_len=6"],
        ),
        "taxibj": (
            ["--data", "taxibj", "--data-root", root / "taxibj"],
            [*WINDOW, "data.options.test_days=2", "data.options.val_days=1"],
        ),
        "custom": (["--data", "custom", "--data-root", root / "series.npy"], WINDOW),
    }


@pytest.mark.parametrize("model", ["predrnnpp", "predrnnv2", "dfn", "cdna", "frnn"])
@pytest.mark.parametrize(
    "data", ["mmnist", "mmnist-accel", "mmnist-file", "kth", "taxibj", "custom"]
)
def test_new_models_train_on_every_dataset(model, data, roots, tmp_path, capsys) -> None:
    flags, sets = roots[data]
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "train", "--model", model, *flags, "--run-dir", run, "--steps", 2,
        "--batch-size", 2, "--set", *NO_DATA, *sets, "eval.num_sequences=2",
    )  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [r["step"] for r in rows] == ["1", "2"]
    logged = [r["decoupling_loss"] for r in rows]
    if model == "predrnnv2":  # the decoupling loss, unweighted, every step
        assert all(0 <= float(v) <= 1 for v in logged)
    else:
        assert logged == ["", ""]
    assert (run / "eval" / "test" / "metrics.json").is_file()
    assert Path(run / "report.md").read_text().startswith(f"# {model} on {data}")
