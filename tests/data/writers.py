"""Writers of tiny files in the real formats, for the data tests."""

from __future__ import annotations

import datetime as dt
import gzip
import struct
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np


def write_idx(path: Path, images: np.ndarray) -> Path:
    """MNIST idx3-ubyte (gzip when the name ends with .gz)."""
    n, r, c = images.shape
    raw = np.array([2051, n, r, c], dtype=">u4").tobytes() + images.astype(np.uint8).tobytes()
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def write_frames(folder: Path, values: list[int], size: tuple[int, int] = (12, 16)) -> None:
    """A KTH clip folder: one constant 3-channel (gray) png per value."""
    folder.mkdir(parents=True)
    for k, v in enumerate(values):
        img = np.full((*size, 3), v, dtype=np.uint8)
        cv2.imwrite(str(folder / f"image-{k + 1:03d}.png"), img)  # numbers beyond 9: natural sort


def write_avi(path: Path, values: list[int], size: tuple[int, int] = (12, 16)) -> None:
    """A tiny MJPG .avi of constant gray frames."""
    h, w = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h), False)
    assert out.isOpened()
    for v in values:
        out.write(np.full((h, w), v, dtype=np.uint8))
    out.release()


def taxibj_dates(days: list[dt.date], skip: dict[dt.date, int] | None = None) -> list[bytes]:
    """``YYYYMMDDss`` byte strings, 48 slots per day; ``skip`` drops one slot of a day."""
    out = []
    for d in days:
        for s in range(1, 49):
            if skip and skip.get(d) == s:
                continue
            out.append(f"{d:%Y%m%d}{s:02d}".encode())
    return out


def taxibj_value(date: bytes) -> float:
    """Flow value that encodes the time slot, so tests can check time order."""
    d = dt.date(int(date[:4]), int(date[4:6]), int(date[6:8]))
    return float(d.toordinal() - 735000) * 100 + int(date[8:10])


def write_taxibj(path: Path, dates: list[bytes], hw: int = 32) -> np.ndarray:
    """A BJ??_M32x32_T30_InOut.h5 with ``data`` (T, 2, hw, hw) float64 and ``date``."""
    data = np.empty((len(dates), 2, hw, hw))
    for k, d in enumerate(dates):
        data[k, 0] = taxibj_value(d)
        data[k, 1] = taxibj_value(d) / 2
    with h5py.File(path, "w") as f:
        f["data"] = data
        f["date"] = np.array(dates, dtype="S10")
    return data


def write_kth(root: Path, persons: dict[str, list[int]], frames: int = 24, size: int = 32) -> Path:
    """A KTH tree: root/<action>/personNN_<action>_d1_uncomp/ clip folders of a random texture
    drifting to the right, for `persons[action]`: steadily (2 px per frame) when the person's
    number plus the action's position in `persons` is even, else at a pace that swings between
    0 and 4 px per frame (stationary and non-stationary motion)."""
    rng = np.random.default_rng(0)
    for a, (action, ids) in enumerate(persons.items()):
        for p in ids:
            steady = (p + a) % 2 == 0
            speed = np.full(frames, 2.0) if steady else 2 + 2 * np.sin(np.arange(frames))
            offsets = np.concatenate([[0], np.cumsum(speed[:-1])]).round().astype(int)
            texture = rng.integers(0, 256, (size, size + offsets[-1] + 1), dtype=np.uint8)
            folder = root / action / f"person{p:02d}_{action}_d1_uncomp"
            folder.mkdir(parents=True)
            for k, o in enumerate(offsets):
                img = np.repeat(texture[:, o : o + size, None], 3, axis=2)
                cv2.imwrite(str(folder / f"image-{k + 1:03d}.png"), img)
    return root


def write_taxibj_root(root: Path, days: int = 6, hw: int = 32) -> Path:
    """A folder with one BJ16_M32x32_T30_InOut.h5 of `days` complete days of smooth flows."""
    root.mkdir(parents=True, exist_ok=True)
    start = dt.date(2016, 3, 1)
    dates = taxibj_dates([start + dt.timedelta(days=k) for k in range(days)])
    t = np.arange(len(dates))[:, None, None, None]  # (T, 1, 1, 1)
    yy, xx = np.mgrid[0:hw, 0:hw]
    wave = np.sin(2 * np.pi * t / 48 + (xx + yy)[None, None] / hw)  # (T, 1, hw, hw)
    data = 100 + 50 * wave * np.array([1.0, 0.5])[None, :, None, None]  # inflow, outflow
    with h5py.File(root / "BJ16_M32x32_T30_InOut.h5", "w") as f:
        f["data"] = data
        f["date"] = np.array(dates, dtype="S10")
    return root


def write_bj_externals(root: Path, dates: list[bytes], holidays: list[dt.date]) -> None:
    """BJ_Holiday.txt (with a blank line) and a BJ_Meteorology.h5 of records at `dates`:
    record k has weather kind k % 17 (of 17), wind speed k % 7 * 1.5, temperature that encodes
    its slot (taxibj_value / 1000)."""
    (root / "BJ_Holiday.txt").write_text("\n\n".join(f"{d:%Y%m%d}" for d in holidays) + "\n")
    n = len(dates)
    weather = np.zeros((n, 17))
    weather[np.arange(n), np.arange(n) % 17] = 1
    with h5py.File(root / "BJ_Meteorology.h5", "w") as f:
        f["date"] = np.array(dates, dtype="S10")
        f["Weather"] = weather
        f["WindSpeed"] = np.arange(n) % 7 * 1.5
        f["Temperature"] = np.array([taxibj_value(d) for d in dates]) / 1000


def write_png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit PNG from uint16 (H, W) gray or (H, W, 2) gray with alpha, chunk by chunk (Pillow
    writes 16-bit gray, but not 16-bit gray with alpha)."""
    h, w = pixels.shape[:2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[pixels.reshape(h, w, -1).shape[2]]
    rows = pixels.astype(">u2").reshape(h, -1)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)  # filter 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip
    return path
