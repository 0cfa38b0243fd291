"""Small files in the formats people keep frames in, for the README's "your own data" walk.

    python scripts/sample_data.py [--out samples]

writes OUT/waves.mp4 (a 300-frame, 48x48 H.264 clip of drifting rings, like a radar loop)
and OUT/rain.nc (a netCDF series of 600 half-hourly 40x40 rain-rate fields on a lat/lon grid,
in mm/h, with moving cells of rain). Nothing is downloaded; the files are a few MB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mimcast.data.video import write_video


def waves(n: int, size: int = 48) -> np.ndarray:
    """uint8 (n, 1, size, size): rings spreading from a centre that drifts across."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = []
    for k in range(n):
        cy, cx = size / 2 + 10 * np.sin(k / 25), (k * 0.4) % size
        r = np.hypot(yy - cy, xx - cx)
        out.append(128 + 110 * np.cos(r / 2.5 - k / 3) * np.exp(-r / 30))
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)[:, None]


def rain(n: int, size: int = 40, seed: int = 0) -> np.ndarray:
    """float32 (n, size, size) mm/h: gaussian cells advected east-north-east, growing and
    decaying, over a dry background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cells = rng.uniform([0, 0, 2, 3, 0], [size, size, 6, 25, 60], (12, 5))  # y, x, r, peak, age
    field = np.zeros((n, size, size), np.float32)
    for t in range(n):
        for c in cells:
            y, x, r, peak, age = c
            life = np.sin(np.pi * ((t + age) % 60) / 60)  # each cell lives 60 steps
            d2 = (yy - (y + 0.15 * t) % size) ** 2 + (xx - (x + 0.4 * t) % size) ** 2
            field[t] += peak * life * np.exp(-d2 / (2 * r * r))
    return field


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("samples"))
    out = p.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    write_video(out / "waves.mp4", waves(300), fps=10)

    import pandas as pd
    import xarray as xr

    values = rain(600)
    da = xr.DataArray(
        values,
        dims=("time", "lat", "lon"),
        coords={
            "time": pd.date_range("2026-07-01", periods=len(values), freq="30min"),
            "lat": np.linspace(52.0, 50.05, 40),
            "lon": np.linspace(4.0, 5.95, 40),
        },
        name="rain_rate",
        attrs={"units": "mm/h", "long_name": "rain rate (synthetic)"},
    )
    ds = da.to_dataset()
    ds.attrs["title"] = "mimcast sample: synthetic rain cells"
    ds.to_netcdf(out / "rain.nc", engine="h5netcdf")
    print(f"wrote {out / 'waves.mp4'} (300 frames 48x48) and {out / 'rain.nc'} (600 x 40x40)")


if __name__ == "__main__":
    main()
