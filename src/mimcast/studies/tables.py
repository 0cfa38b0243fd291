"""The studies of the paper: which models each compares, on which data, and what it claims."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Study:
    title: str
    data: str
    models: tuple[str, ...]  # labels of studies.report.MODELS
    pairs: tuple[tuple[str, str], ...]  # comparisons (first vs second)
    claim: str
    paper: dict[str, tuple[float, float, float]]  # label -> (SSIM, MSE, MAE) as published
    gates: bool = False


STUDIES: dict[str, Study] = {
    "table1": Study(
        title="Table 1: ConvLSTM, PredRNN and MIM on Moving MNIST, 10 → 10",
        data="mmnist",
        models=("convlstm", "predrnn", "mim"),
        pairs=(("mim", "predrnn"), ("mim", "convlstm"), ("predrnn", "convlstm")),
        claim="MIM beats PredRNN and ConvLSTM on Moving MNIST (Table 1), and its error grows "
        "more slowly over the horizon (Figures 4–5).",
        paper={
            "convlstm": (0.707, 103.3, 182.9),
            "predrnn": (0.867, 56.8, 126.1),
            "mim": (0.874, 52.0, 116.5),
        },
    ),
    "table2": Study(
        title="Table 2: MIM, MIM without MIM-N, MIM without MIM-S (Moving MNIST, 10 → 10)",
        data="mmnist",
        models=("mim", "mim-no-mimn", "mim-no-mims"),
        pairs=(("mim", "mim-no-mimn"), ("mim", "mim-no-mims"), ("mim-no-mimn", "mim-no-mims")),
        claim="Both MIM-N and MIM-S matter: removing either makes MIM worse (Table 2).",
        paper={
            "mim-no-mimn": (0.858, 54.4, 124.8),
            "mim-no-mims": (0.853, 55.7, 125.5),
            "mim": (0.874, 52.0, 116.5),
        },
    ),
    "table3": Study(
        title="Table 3: PredRNN and MIM on Moving MNIST with acceleration, 10 → 10",
        data="mmnist-accel",
        models=("predrnn", "mim"),
        pairs=(("mim", "predrnn"),),
        claim="MIM's advantage grows when motion is non-stationary (Table 3; the paper's cells "
        "are empty, so there are no published numbers to compare with).",
        paper={},
    ),
    "forget-gates": Study(
        title="Figure 7: forget-gate saturation of PredRNN and MIM (Moving MNIST, 10 → 10)",
        data="mmnist",
        models=("predrnn", "mim"),
        pairs=(("mim", "predrnn"),),
        claim="PredRNN's forget gates saturate (most values above 0.9) while MIM's fake forget "
        "gates (MIM-S output / C_{t-1}) are lower (about 60% above 0.9) and more volatile "
        "(Figure 7, measured on KTH in the paper).",
        paper={},
        gates=True,
    ),
}
