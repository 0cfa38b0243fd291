"""`mimcast experiment`: every study end to end on a tiny budget, resume, and gate accounting."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mimcast import cli
from mimcast.studies.catalogue import MODELS, SIZES
from mimcast.studies.comparisons import compare_models, ordering_lines, paper_orderings
from mimcast.studies.experiments import StudyRequest, run_study, study_configs
from mimcast.studies.forget_gates import GateStats, merge_seeds, report_lines
from mimcast.studies.tables import STUDIES
from tests.tiny import tiny_sets

# The tiny run (bf16 as the cpu preset has it; 8 sequences); steps and eta come from the study.
TINY = tuple(
    s
    for s in tiny_sets({"data": {"options": {"num_sequences": 8}}})
    if not s.startswith(("train.precision", "train.sampling", "train.val_every",
                         "train.checkpoint_every"))
)  # fmt: skip


def _run(name: str, tmp: Path, seeds=(0,), log=None) -> tuple[Path, dict]:
    request = StudyRequest(
        name=name,
        preset="cpu",
        seeds=seeds,
        out=tmp / "runs" / name,
        report_dir=tmp / "docs" / name,
        steps=2,
        sets=TINY,
    )
    report = run_study(request, log=log or (lambda *_: None))
    return report, json.loads((report.parent / "results.json").read_text())


def _check_report(name: str, report: Path, results: dict, seeds: tuple[int, ...]) -> str:
    text = report.read_text()
    study = STUDIES[name]
    assert results["study"] == name and results["seeds"] == list(seeds)
    assert set(results["models"]) == set(study.models)
    for label in study.models:
        r = results["models"][label]
        assert set(r["seeds"]) == {str(s) for s in seeds}
        for s in r["seeds"].values():
            assert math.isfinite(s["mean"]["mse"]) and len(s["per_frame"]["ssim"]) == 3
            assert s["config"]["train"]["steps"] == 2 and s["config"]["model"]["hidden"] == [4, 4]
        assert len(r["per_frame_mean"]["mse"]) == 3
        assert f"| {MODELS[label][0]} |" in text
    for pic in ("framewise_mse.png", "framewise_ssim.png"):
        assert Image.open(report.parent / pic).size[0] > 100 and f"]({pic})" in text
    assert results["command"].startswith(f"mimcast experiment {name} --preset cpu --seeds")
    assert results["machine"]["torch"] == torch.__version__ and results["budget"]
    assert "## Reproduce" in text and results["command"] in text
    assert not any((report.parent / "runs").glob("*"))  # run folders stay out of the report
    return text


def test_table1_two_seeds_skips_finished_and_resumes(tmp_path: Path) -> None:
    report, results = _run("table1", tmp_path, seeds=(0, 1))
    text = _check_report("table1", report, results, (0, 1))
    assert "| MIM | 1 |" in text and "| ConvLSTM | 0 |" in text
    assert "spread" in text and "| PredRNN | 0.867 | 56.8 | 126.1 |" in text
    assert len(results["comparisons"]) == 12 and "| PredRNN++ | 1 |" in text
    assert "| FC-LSTM | 0 |" in text and "| DFN | 0.726 | 89.0 | 172.8 |" in text
    assert "| VPN (baseline) | 0.870 | 64.1 | 131.0 |" in text  # printed as published
    assert "| MIM | 2 x 4 | " in text and "each model's channels" in results["budget"]
    assert "### The paper's orderings at this budget" in text  # 10 pairs published, 3 metrics
    assert "Of 30 published orderings compared: " in text and len(results["paper_orderings"]) == 10
    assert "| FRNN | 0.813 | 69.7 | 150.3 |" in text and "**FRNN vs DFN**" in text
    assert all(
        m["spread"] in ("exceeds", "within")
        for c in results["comparisons"]
        for m in c["metrics"].values()
    )
    # Re-running trains nothing; a run without its finished marker is resumed (no new steps)
    # and evaluated again.
    shutil.rmtree(tmp_path / "runs" / "table1" / "runs" / "mim-seed1" / "eval")
    (tmp_path / "runs" / "table1" / "runs" / "mim-seed1" / "experiment.json").unlink()
    logs: list[str] = []
    _, again = _run("table1", tmp_path, seeds=(0, 1), log=logs.append)
    assert sum(m.startswith("resuming ") for m in logs) == 1
    assert again["models"]["mim"]["seeds"]["1"]["resumed"]
    assert "min since its last resume |" in (tmp_path / "docs" / "table1" / "report.md").read_text()
    assert any("nothing to do" in m for m in logs)
    log_csv = tmp_path / "runs" / "table1" / "runs" / "mim-seed1" / "log.csv"
    assert len(log_csv.read_text().splitlines()) == 3  # header and steps 1, 2: none added
    assert (
        again["models"]["mim"]["seeds"]["1"]["mean"]
        == results["models"]["mim"]["seeds"]["1"]["mean"]
    )


def test_table2_ablations(tmp_path: Path) -> None:
    report, results = _run("table2", tmp_path)
    text = _check_report("table2", report, results, (0,))
    cfgs = {k: v["seeds"]["0"]["config"]["model"] for k, v in results["models"].items()}
    assert cfgs["mim-no-mimn"]["mim_n"] is False and cfgs["mim-no-mims"]["mim_s"] is False
    assert "MIM without MIM-S" in text and "one seed: spread unknown" in text


def test_table3_through_the_cli(tmp_path: Path, capsys) -> None:
    out, docs = tmp_path / "runs" / "table3", tmp_path / "docs" / "table3"
    rc = cli.main(
        [
            "experiment",
            "table3",
            "--seeds",
            "0",
            "--steps",
            "2",
            "--out",
            str(out),
            "--report-dir",
            str(docs),
            "--set",
            *TINY,
        ]
    )
    assert rc == 0
    assert f"report: {docs / 'report.md'}" in capsys.readouterr().out
    results = json.loads((docs / "results.json").read_text())
    _check_report("table3", docs / "report.md", results, (0,))
    assert results["models"]["mim"]["seeds"]["0"]["config"]["data"]["name"] == "mmnist-accel"
    assert (out / "runs" / "mim-seed0" / "eval" / "test" / "metrics.json").is_file()
    assert cli.main(["experiment", "table9", "--out", str(out)]) == 2
    assert "unknown experiment 'table9'" in capsys.readouterr().err


def test_forget_gates_study(tmp_path: Path) -> None:
    report, results = _run("forget-gates", tmp_path)
    text = _check_report("forget-gates", report, results, (0,))
    gates = results["gates"]
    assert [g["gate"] for g in gates["predrnn"]["layers"].values()] == ["forget", "forget"]
    assert [g["gate"] for g in gates["mim"]["layers"].values()] == ["forget", "fake_forget"]
    for g in gates.values():
        for layer in g["layers"].values():
            assert 0 <= layer["share_above"]["mean"] <= 1
            assert len(layer["per_step_share"]) == 5 and len(layer["hist"]) == 40
    for pic in ("gates_hist_predrnn.png", "gates_hist_mim.png", "gates_share.png"):
        assert (report.parent / pic).is_file() and f"]({pic})" in text
    assert "## Forget gates" in text and "fake_forget" in text
    assert (tmp_path / "runs" / "forget-gates" / "gates" / "mim-seed0.json").is_file()


def test_gate_stats_accounting() -> None:
    stats = GateStats()
    nan = math.nan
    # step 0: 6 values, 1 NaN, 2 above 0.9 (0.93 and 3.0); 0.9 itself is not above.
    stats(0, 1, "fake_forget", torch.tensor([[0.93, 0.52, nan], [0.9, 3.0, -2.0]]))
    # step 1 (two calls, e.g. two batches): 4 values, 0 NaN, 1 above 0.9.
    stats(1, 1, "fake_forget", torch.tensor([0.97, 0.12]))
    stats(1, 1, "fake_forget", torch.tensor([0.22, 0.33]))
    stats(0, 0, "forget", torch.full((2, 3), 0.97))
    out = stats.summary()
    layer = out["layers"]["1"]
    assert layer["gate"] == "fake_forget"
    assert (layer["n_values"], layer["n_ignored"], layer["n_above"]) == (10, 1, 3)
    assert layer["share_above"] == pytest.approx(3 / 9)
    assert layer["per_step_share"] == pytest.approx([2 / 5, 1 / 4])
    assert layer["volatility"] == pytest.approx(abs(2 / 5 - 1 / 4) / 2)  # population std
    edges = out["bin_edges"]
    assert edges[0] == -0.5 and edges[-1] == 1.5 and len(edges) == 41  # 0.05 wide
    hist = layer["hist"]
    assert sum(hist) == 9 and hist[0] == 1 and hist[-1] == 1  # -2.0 and 3.0 are clipped
    assert hist[20] == 1 and hist[29] == 1  # 0.52 in [0.5, 0.55), 0.97 in [0.95, 1.0)
    assert out["layers"]["0"]["share_above"] == 1.0 and out["layers"]["0"]["volatility"] == 0.0
    merged = merge_seeds([out, out])
    assert merged["layers"]["1"]["share_above"]["mean"] == pytest.approx(3 / 9)
    assert merged["layers"]["1"]["share_above"]["std"] == 0.0
    assert merged["seed_share"]["fake_forget"] == pytest.approx([3 / 9, 3 / 9])


def test_presets_give_every_model_the_same_budget() -> None:
    runs = study_configs(StudyRequest("table1", "cpu", (0, 1)))
    table1 = ("fclstm", "convlstm", "trajgru", "cdna", "dfn", "frnn", "vpn", "predrnn",
              "predrnnpp", "mim")  # fmt: skip
    assert [(label, seed) for label, seed, _ in runs] == [
        (label, seed) for label in table1 for seed in (0, 1)
    ]
    for label, seed, cfg in runs:
        assert cfg.train.seed == seed and cfg.train.steps == runs[0][2].train.steps
        assert cfg.model.filter_size == 3  # sizes: tests/studies/test_budgets.py
        sized = SIZES.get(label, {}).get("cpu", {"hidden": [32] * 4})
        assert cfg.model.hidden == tuple(sized["hidden"])
        assert cfg.data.name == "mmnist" and cfg.data.options["seq_len"] == 20
        assert cfg.train.sampling.eta_decay == pytest.approx(2 / cfg.train.steps)
    paper = study_configs(StudyRequest("table3", "paper", (0,)))
    for label, _, cfg in paper:
        sized = SIZES.get(label, {}).get("paper", {"hidden": [64] * 4})
        assert cfg.model.hidden == tuple(sized["hidden"]) and cfg.model.filter_size == 5
        assert cfg.model.layer_norm and cfg.train.steps == 100_000
        assert cfg.train.sampling.eta_decay == pytest.approx(2e-5)
        assert cfg.data.name == "mmnist-accel"
    ablation = study_configs(
        StudyRequest("table2", "cpu", (0,), sets=("model.hidden=[16,16,16,16]",))
    )
    assert all(cfg.model.hidden == (16,) * 4 for _, _, cfg in ablation)


KEYS = ("share_above", "volatility", "ignored_share")


def _merged(gates: dict[str, list[float]]) -> dict:
    """merge_seeds-shaped input: one layer per gate kind, the given per-seed shares."""
    layers = {
        str(i): {"gate": g, **{k: {"mean": np.mean(v), "std": 0.0} for k in KEYS}}
        for i, (g, v) in enumerate(gates.items())
    }
    return {"layers": layers, "seed_share": gates}


@pytest.mark.parametrize("predrnn, mim, saturates, ordered", [
    ([0.95, 0.93], [0.6, 0.62], "holds", "holds"),  # the paper's Figure 7
    ([0.001, 0.002], [0.38, 0.32], "does not hold", "does not hold"),  # our CPU budget
])  # fmt: skip
def test_forget_gate_report_says_whether_the_paper_holds(predrnn, mim, saturates, ordered) -> None:
    text = "\n".join(
        report_lines(
            {"PredRNN": _merged({"forget": predrnn}), "MIM": _merged({"fake_forget": mim})}, []
        )
    )
    assert f"PredRNN's forget gates saturate (most values above 0.9) {saturates} here" in text
    assert f"less often than PredRNN's forget values {ordered} here" in text


@pytest.fixture(scope="module")
def kth_and_taxibj(tmp_path_factory) -> dict[str, Path]:
    from tests.data.writers import taxibj_dates, write_bj_externals, write_kth, write_taxibj_root

    root = tmp_path_factory.mktemp("paper-data")
    persons = [1, 2, 3, 4, 16, 17, 18, 19, 20]  # train 1-4 (and 16, held out), test 17-20
    write_kth(root / "kth", {"boxing": persons, "running": persons}, frames=30, size=32)
    # 11 days: the 8th, the last of the train part, is the first with a week before it
    write_taxibj_root(root / "taxibj", days=11)
    days = [dt.date(2016, 3, 1) + dt.timedelta(days=k) for k in range(11)]
    write_bj_externals(root / "taxibj", taxibj_dates(days), days[9:10])
    return {"kth": root / "kth", "taxibj": root / "taxibj"}


KTH_TINY = (
    "data.options.image_size=32", "data.options.seq_len=6", "data.options.context_len=3",
    "data.eval_options.seq_len=9",
)  # fmt: skip
TAXIBJ_TINY = ("data.options.test_days=2", "data.options.val_days=1")


@pytest.mark.parametrize("name", ["table4", "table5", "table6", "table7"])
def test_kth_and_taxibj_tables_run_end_to_end(name, kth_and_taxibj, tmp_path, capsys) -> None:
    kth = name != "table7"
    root = kth_and_taxibj["kth" if kth else "taxibj"]
    sets = [s for s in TINY if not s.startswith("data.options")]
    sets += KTH_TINY if kth else TAXIBJ_TINY
    rc = cli.main([
        "experiment", name, "--seeds", "0", "--steps", "2", "--data-root", str(root),
        "--out", str(tmp_path / "out"), "--report-dir", str(tmp_path / "report"), "--set", *sets,
    ])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    text = (tmp_path / "report" / "report.md").read_text()
    assert set(results["models"]) == set(STUDIES[name].models)
    first = results["models"][STUDIES[name].models[-1]]["seeds"]["0"]  # MIM
    data = first["config"]["data"]
    assert data["name"] == ("kth" if kth else "taxibj") and data["root"] == str(root)
    assert len(first["per_frame"]["mse"]) == (6 if kth else 4)  # 3 -> 6 frames, or 4 -> 4
    if name in ("table5", "table6"):
        assert data["options"]["stationarity"] == ("stationary" if name == "table5" else
                                                   "non-stationary")  # fmt: skip
    if name == "table4":
        assert "| MIM | 28.16 | 0.806 |" in text  # the paper's PSNR and SSIM beside ours
        assert "| MCNet | 25.95 | 0.804 |" in text
        mcnet = results["models"]["mcnet"]["seeds"]["0"]["config"]
        assert mcnet["model"]["name"] == "mcnet" and mcnet["train"]["loss"] == "mse+gdl"
    if name == "table7":
        assert "| MIM | 0.554 | 0.737 | 0.887 | 0.999 |" in text
        assert "| VPN (baseline) | 0.744 | 1.031 | 1.251 | 1.444 |" in text
        assert first["config"]["train"]["sampling"]["kind"] == "none"
        assert first["config"]["model"]["patch_size"] == 2
        st = results["models"]["stresnet"]["seeds"]["0"]["config"]
        assert st["model"]["patch_size"] == 1 and st["model"]["stresnet_externals"] == 28
        assert st["data"]["options"]["trend_weeks"] == 1 and "trend_weeks" not in data["options"]
        assert "| ST-ResNet | 0.688 | 0.939 | 1.130 | 1.288 |" in text
        assert "| ST-ResNet | 2 x 4 (patch size 1) | " in text  # where it differs from MIM's


def test_the_stationary_and_non_stationary_halves_differ(kth_and_taxibj) -> None:
    """Tables 5 and 6 train and test on the two sides of one split of KTH."""
    from mimcast.data import build_dataset

    opts = dict(image_size=32, seq_len=6, context_len=3, val_persons=[16])
    sides = {
        kind: build_dataset("kth", "test", root=kth_and_taxibj["kth"], stationarity=kind, **opts)
        for kind in ("stationary", "non-stationary")
    }
    actions = {"boxing": 0, "running": 1}  # the writer: steady when person + action is even

    def parity(ds, i) -> int:
        clip = ds.clips[ds.inner.windows[i][0]]
        return (clip.person + actions[clip.action]) % 2

    found = {k: {parity(ds, i) for i in ds.indices} for k, ds in sides.items()}
    assert found == {"stationary": {0}, "non-stationary": {1}}


def _models(per_seed: dict[str, list[tuple[float, float, float]]]) -> dict:
    """Hand-made study results: per model, (mse, mae, ssim) of each seed."""
    return {
        label: {
            "seeds": {k: {"mean": dict(zip(("mse", "mae", "ssim"), v, strict=True))}
                      for k, v in enumerate(seeds)},
            "per_frame_mean": {"mse": [float(np.mean([v[0] for v in seeds]))] * 2},
        }
        for label, seeds in per_seed.items()
    }  # fmt: skip


def test_the_spread_rule_on_seed_results_with_a_known_answer() -> None:
    """A difference exceeds the spread when the two models' per-seed ranges do not overlap:
    mse [100, 102] against [105, 110] do not; mae [10, 20] against [15, 30] do; ssim ranges that
    touch at 0.5 overlap. One seed: unknown."""
    models = _models({
        "mim": [(100.0, 10.0, 0.4), (102.0, 20.0, 0.5)],
        "predrnn": [(110.0, 30.0, 0.5), (105.0, 15.0, 0.6)],
        "convlstm": [(90.0, 5.0, 0.9)],
    })  # fmt: skip
    c = compare_models(models, "mim", "predrnn")
    assert {m: r["spread"] for m, r in c["metrics"].items()} == {
        "mse": "exceeds", "mae": "within", "ssim": "within"}  # fmt: skip
    assert c["metrics"]["mse"]["a_better"] and not c["metrics"]["ssim"]["a_better"]
    assert c["metrics"]["mse"]["a"] == 101.0 and c["metrics"]["mse"]["b"] == 107.5
    one = compare_models(models, "mim", "convlstm")["metrics"]
    assert {r["spread"] for r in one.values()} == {"single-seed"}


def test_the_papers_orderings_with_a_known_answer() -> None:
    """MIM beats PredRNN in MSE beyond the spread (the paper agrees: holds) and loses in SSIM
    within it (the paper has MIM better: reversed, within the spread); MAE is not published
    for PredRNN here, so it is not judged; a pair whose second model the paper lacks is left
    out; one seed says so."""
    models = _models({
        "mim": [(100.0, 10.0, 0.4), (102.0, 20.0, 0.5)],
        "predrnn": [(110.0, 30.0, 0.5), (105.0, 15.0, 0.6)],
        "predrnnpp": [(90.0, 5.0, 0.9), (91.0, 5.0, 0.9)],
        "convlstm": [(90.0, 5.0, 0.9)],
    })  # fmt: skip
    paper = {"mim": {"mse": 52.0, "mae": 116.5, "ssim": 0.874},
             "predrnn": {"mse": 56.8, "ssim": 0.867}, "convlstm": {"mse": 103.3}}  # fmt: skip
    pairs = [("mim", "predrnn"), ("mim", "predrnnpp"), ("mim", "convlstm")]
    got = paper_orderings([compare_models(models, a, b) for a, b in pairs], paper)
    assert [(o["a"], o["b"]) for o in got] == [("mim", "predrnn"), ("mim", "convlstm")]
    assert {m: r["verdict"] for m, r in got[0]["metrics"].items()} == {
        "mse": "holds", "ssim": "reversed, within the spread"}  # fmt: skip
    assert got[1]["metrics"]["mse"] == {
        "paper_better": "mim",
        "holds": False,
        "spread": "single-seed",
        "verdict": "reversed (one seed)",
    }
    text = "\n".join(ordering_lines(got))
    assert "| MIM vs PredRNN | MIM: holds | MIM: reversed, within the spread |" in text
    assert text.endswith("Of 3 published orderings compared: holds: 1; reversed, within the "
                         "spread: 1; reversed (one seed): 1.")  # fmt: skip
