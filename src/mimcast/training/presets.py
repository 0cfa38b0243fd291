"""The one table of presets: named layers of run-config sections (see config.resolve_config).

Run presets (`mimcast train --preset NAME`) and the studies' budgets (`mimcast experiment
--preset cpu|paper`) are all here and merge the same way.
"""

from __future__ import annotations

from mimcast.settings import merge

# Section 5 of the paper: 4 layers x 64 channels, filter 5, layer norm, L2 loss, Adam 1e-3,
# batch 8, 100,000 iterations, scheduled sampling with eta falling 2e-5 per iteration.
SECTION5 = {
    "model": {"hidden": [64] * 4, "filter_size": 5, "layer_norm": True, "patch_size": 4},
    "train": {
        "steps": 100_000,
        "batch_size": 8,
        "lr": 1e-3,
        "sampling": {"kind": "linear", "eta_start": 1.0, "eta_decay": 2e-5},
    },
}
MOVING_MNIST = {"data": {"name": "mmnist", "options": {"seq_len": 20, "context_len": 10}}}

PRESETS: dict[str, dict] = {
    # Sized for a 2-core CPU: learns Moving MNIST visibly in about 5 minutes (blurry is expected).
    # A one-cycle schedule with a 4x higher peak lr, and the 500 steps that fit in the time the
    # first round's 450 constant-lr steps took: 8% lower test MSE over 2 seeds (README).
    "quick": merge(
        MOVING_MNIST,
        {
            "model": {
                "name": "mim",
                "hidden": [32] * 4,
                "filter_size": 3,
                "patch_size": 4,
                "layer_norm": False,
            },
            "train": {
                "steps": 500,
                "lr": 4e-3,
                "lr_schedule": "onecycle",
                # scheduled sampling ends at step 333 instead of 50,000
                "sampling": {"kind": "linear", "eta_decay": 0.003},
                "val_every": 250,
                "val_sequences": 64,
                "checkpoint_every": 250,
                "precision": "bf16-mixed",
            },
            "eval": {"num_sequences": 256},
        },
    ),
    "mmnist": merge(SECTION5, MOVING_MNIST),
    "kth": merge(
        SECTION5,
        {
            "data": {
                "name": "kth",
                # person 16 is held out for validation (the reference validates on the test
                # persons, which makes "best" checkpoints look better than they are)
                "options": {
                    "seq_len": 20,
                    "context_len": 10,
                    "image_size": 128,
                    "val_persons": [16],
                },
                "eval_options": {"seq_len": 30},  # trained 10 -> 10, tested 10 -> 20
            },
        },
    ),  # fmt: skip
    "taxibj": merge(
        SECTION5,
        {
            "model": {"patch_size": 2},
            # two weeks before the test period are held out for validation (not the test weeks)
            "data": {"name": "taxibj", "options": {"seq_len": 8, "context_len": 4, "val_days": 14}},
            "train": {"sampling": {"kind": "none"}},
        },
    ),
    # PredRNN-V2's published Moving MNIST recipe (predrnn-pytorch's mnist_predrnn_v2.sh):
    # 4 x 128, filter 5, patch 4, no layer norm, decoupling beta 0.1, lr 1e-4, batch 8,
    # 80,000 iterations, reverse scheduled sampling (s1 25,000, s2 50,000, alpha 2,500), and
    # training on the time-reversed sequences too.
    "predrnnv2": merge(
        MOVING_MNIST,
        {
            "model": {
                "name": "predrnnv2",
                "hidden": [128] * 4,
                "filter_size": 5,
                "patch_size": 4,
                "layer_norm": False,
            },
            "train": {
                "steps": 80_000,
                "batch_size": 8,
                "lr": 1e-4,
                "decouple_beta": 0.1,
                "reverse_time": True,
                "sampling": {
                    "kind": "reverse",
                    "reverse_s1": 25_000,
                    "reverse_s2": 50_000,
                    "reverse_alpha": 2_500.0,
                },
            },
        },
    ),  # fmt: skip
    # The studies' budgets (`mimcast experiment --preset`): the same for every model of a study.
    # Sized for a 2-core CPU: table1 (3 models x 2 seeds, 500 steps) takes under an hour.
    "cpu": merge(
        MOVING_MNIST,
        {
            "model": {"hidden": [32] * 4, "filter_size": 3, "patch_size": 4, "layer_norm": False},
            "train": {"steps": 500, "precision": "bf16-mixed", "val_sequences": 64},
            "eval": {"split": "test", "num_sequences": 512, "show": 2},
        },
    ),
    # Section 5 on any data set; a GPU budget (100,000 steps).
    "paper": merge(
        merge(SECTION5, MOVING_MNIST),
        {"train": {"val_sequences": 256, "device": "auto"}, "eval": {"num_sequences": 0}},
    ),
}
DEFAULT_PRESET = "quick"
