"""The parts of an OpenSTL parity fixture that are drawn, not stored: its frames and every
parameter of OpenSTL's models, from numpy's generator seeded by the fixture's seed.

scripts/openstl_fixture.py draws them the same way before running OpenSTL's own models, and
stores only what OpenSTL computed (the predictions, the decoupling loss), the masks (0/1, as
uint8) and, per model, the names, shapes and ranges of its parameters. A fixture of random
float64 weights would weigh ~100x more than the outputs that are the point of it.
"""

from __future__ import annotations

import ast

import numpy as np

# A fixed index per model: each draws from its own stream, so adding one changes no other.
STREAMS = {"frames": 0, "convlstm": 1, "predrnn": 2, "mim": 3, "predrnnpp": 4, "predrnnv2": 5}
WEIGHTS, NORM_WEIGHTS = (-0.3, 0.3), (0.7, 1.3)  # uniform ranges: parameters, LayerNorm weights


def draw_frames(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """(B, T, C, H, W) frames in [0, 1), float64."""
    return np.random.default_rng([seed, STREAMS["frames"]]).uniform(0, 1, shape)


def draw_params(seed: int, model: str, layout: list[tuple[str, tuple, tuple]]) -> dict:
    """Every parameter (name -> float64 array) of `model`, in the order of `layout`:
    (name, shape, (low, high)) triples, OpenSTL's state_dict order."""
    rng = np.random.default_rng([seed, STREAMS[model]])
    return {name: rng.uniform(lo, hi, shape) for name, shape, (lo, hi) in layout}


def load(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, arrays) of a fixture, with the drawn frames and parameters put back under the
    keys the fixture would have stored them: `frames`, `<model>/param/<name>`; masks float64."""
    stored = np.load(path)
    cfg = ast.literal_eval(str(stored["meta/config"]))
    data = {k: stored[k] for k in stored.files if not k.startswith("meta/")}
    for k in [k for k in data if k.endswith("/mask")]:
        data[k] = data[k].astype(np.float64)
    shape = (cfg["batch"], cfg["T"], cfg["C"], cfg["H"], cfg["W"])
    data["frames"] = draw_frames(cfg["seed"], shape)
    for model in cfg["models"]:
        layout = ast.literal_eval(str(stored[f"meta/layout/{model}"]))
        for name, value in draw_params(cfg["seed"], model, layout).items():
            data[f"{model}/param/{name}"] = value
    return cfg, data
