"""KTH actions: frame folders or raw .avi files, grayscale, resized, windowed lazily or cached.

Model units: intensity in [0, 1] (pixel / 255); ``to_units`` gives pixel intensity 0-255.

Clips are found anywhere under ``root`` (two levels, e.g. ``boxing/person01_boxing_d1_uncomp/``):
folders ``personPP_ACTION_dD_uncomp/`` of image files (sorted by the numbers in their names) or
files ``personPP_ACTION_dD_uncomp.avi``. Persons 1-16 are train and 17-25 test (PredRNN, MIM).
Windows step by ``seq_len`` for boxing, handclapping, handwaving and walking and by 3 for jogging
and running, as in the reference loader. Frames are read per item (lazily); with ``cache_dir`` all
frames of the split are decoded once into a memory-mapped uint8 .npy there, reused afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mimcast.errors import DataError

from .base import PIXEL, PIXEL_UNITS, SequenceDataset, check_lengths, check_split, require_path

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
FAST_ACTIONS = ("jogging", "running")  # windows step by 3 frames
CLIP_RE = re.compile(r"^person(\d+)_(" + "|".join(ACTIONS) + r")_d(\d+)(?:_uncomp)?$")
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm"}


def _natural(name: str) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def _cv2():
    try:
        import cv2
    except ImportError as e:
        raise DataError(
            "reading KTH needs opencv: pip install opencv-python-headless (mimcast[formats])"
        ) from e
    return cv2


def _gray_resize(frame: np.ndarray, size: int, where: str) -> np.ndarray:
    cv2 = _cv2()
    if frame.ndim == 3:  # KTH is grayscale stored as 3 equal channels
        frame = frame[..., 0] if frame.shape[2] in (3, 4) else frame.mean(axis=2)
    if frame.ndim != 2 or frame.size == 0:
        raise DataError(f"{where}: not a 2D image (shape {frame.shape})")
    if frame.dtype != np.uint8:
        raise DataError(f"{where}: expected 8-bit pixels, got {frame.dtype}")
    # INTER_AREA averages source pixels when shrinking, as the PredRNN preprocessing does.
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def _read_image(path: Path, size: int) -> np.ndarray:
    img = _cv2().imread(str(path), -1)  # -1: keep depth and channels as stored
    if img is None:
        raise DataError(f"{path}: cannot read image")
    return _gray_resize(img, size, str(path))


def _read_avi(path: Path, size: int | None) -> np.ndarray | int:
    """All frames of an .avi as uint8 (N, size, size), or only their count when size is None."""
    cap = _cv2().VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open video")
    try:
        if size is None:  # count without decoding
            n = 0
            while cap.grab():
                n += 1
            frames = None
        else:
            frames = list(_decoded(cap, size, path))
            n = len(frames)
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"{path}: no frames could be decoded")
    return n if frames is None else np.stack(frames)


def _decoded(cap, size: int, path: Path):
    """Frames of an open cv2 capture, grayscale and resized, until it ends."""
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            return
        yield _gray_resize(img, size, f"{path} frame {n}")
        n += 1


def _ranges(ids: set[int]) -> str:
    """{1, 2, 3, 5} -> "1-3, 5"."""
    runs: list[list[int]] = []  # [first, last] of each run of consecutive ids
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs) or "none"


class Clip:
    """One KTH clip: a frame folder or an .avi file."""

    def __init__(self, path: Path, person: int, action: str) -> None:
        self.path, self.person, self.action = path, person, action
        self.is_video = path.is_file()
        self.files = (
            []
            if self.is_video
            else sorted(
                (p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXT),
                key=lambda p: _natural(p.name),
            )
        )
        self.length = _read_avi(path, None) if self.is_video else len(self.files)


def find_clips(root: Path) -> list[Clip]:
    """KTH clips under ``root`` (itself, or one level of per-action folders), sorted by name."""
    found: dict[str, Path] = {}
    # Per-action folders are searched one level down; clip folders themselves are not.
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not CLIP_RE.match(p.name))
    for folder in [root, *subdirs]:
        for p in sorted(folder.iterdir()):
            stem = p.stem if p.suffix.lower() == ".avi" else p.name
            if CLIP_RE.match(stem) and (p.is_dir() or p.suffix.lower() == ".avi"):
                found.setdefault(stem, p)  # a frame folder and its .avi: keep one
    clips = []
    for stem in sorted(found, key=_natural):
        m = CLIP_RE.match(stem)
        assert m is not None
        clips.append(Clip(found[stem], int(m.group(1)), m.group(2)))
    return clips


class KTH(SequenceDataset):
    """KTH actions; items (seq_len, 1, image_size, image_size) in [0, 1].

    Args:
        root: folder holding the clips (see module docstring).
        split: "train" (persons 1-16), "test" (17-25) or "val" (``val_persons``; by default the
            test persons, as the reference code validates on its test set).
        seq_len: frames per window; default 20 (10 -> 10) for train, 30 (10 -> 20) otherwise.
        context_len: input frames (10). image_size: output side in pixels (128).
        actions: actions to use (all six). cache_dir: folder for the uint8 frame cache.
        train_persons / test_persons / val_persons: person ids of each split; persons in
            ``val_persons`` are removed from train.
    """

    name = "kth"
    units = PIXEL_UNITS
    normalizer = PIXEL

    def __init__(
        self,
        root: str | os.PathLike | None,
        split: str = "train",
        *,
        seq_len: int | None = None,
        context_len: int = 10,
        image_size: int = 128,
        actions: Sequence[str] = ACTIONS,
        cache_dir: str | os.PathLike | None = None,
        train_persons: Sequence[int] = tuple(range(1, 17)),
        test_persons: Sequence[int] = tuple(range(17, 26)),
        val_persons: Sequence[int] | None = None,
    ) -> None:
        self.split = check_split(split, self.name)
        self.root = require_path(root, self.name, is_dir=True)
        self.source = str(self.root)
        seq_len = (20 if split == "train" else 30) if seq_len is None else seq_len
        self.seq_len, self.context_len = check_lengths(seq_len, context_len, self.name)
        if int(image_size) < 1:
            raise DataError(f"{self.name}: image_size must be >= 1, got {image_size}")
        self.image_size = int(image_size)
        self.frame_shape = (1, self.image_size, self.image_size)
        bad = [a for a in actions if a not in ACTIONS]
        if bad:
            raise DataError(f"{self.name}: unknown action(s) {bad}; valid: {', '.join(ACTIONS)}")
        by_split = {
            "train": set(train_persons) - set(val_persons or ()),
            "val": set(test_persons if val_persons is None else val_persons),
            "test": set(test_persons),
        }
        persons = by_split[split]
        self.split_rule = (
            "by person: "
            + "; ".join(f"{k} {_ranges(v)}" for k, v in by_split.items())
            + f"; windows step by {self.seq_len} frames (by 3 for jogging and running)"
        )
        self.clips = [c for c in self._all_clips() if c.person in persons and c.action in actions]
        if not self.clips:
            raise DataError(
                f"{self.root}: no KTH clips (personNN_action_dN_uncomp folders or .avi) "
                f"for the {split} split (persons {sorted(persons)})"
            )
        for c in self.clips:
            if not c.is_video and c.length == 0:
                raise DataError(f"{c.path}: no image files")
        # Window table: (clip index, first frame). Reference stride rules, see module docstring.
        rows = []
        for k, c in enumerate(self.clips):
            step = 3 if c.action in FAST_ACTIONS else self.seq_len
            rows += [(k, s) for s in range(0, c.length - self.seq_len + 1, step)]
        if not rows:
            raise DataError(
                f"{self.root}: every {split} clip is shorter than one window of {self.seq_len}"
            )
        self.windows = np.asarray(rows, dtype=np.int64)  # (N, 2)
        self.offsets = np.concatenate([[0], np.cumsum([c.length for c in self.clips])])
        self._decoded: OrderedDict[int, np.ndarray] = OrderedDict()
        self.cache: np.ndarray | None = None
        if cache_dir is not None:
            self.cache = self._open_cache(Path(cache_dir).expanduser())

    def _all_clips(self) -> list[Clip]:
        """The clips under root, or under root/kth, root/KTH or root/data/kth (OpenSTL)."""
        for folder in (self.root, *(self.root / s for s in ("kth", "KTH", "data/kth"))):
            clips = find_clips(folder) if folder.is_dir() else []
            if clips:
                if folder != self.root:
                    self.note = f"took the clips in {folder}"
                return clips
        return []

    def __len__(self) -> int:
        return len(self.windows)

    def _where(self, i: int) -> str:
        k, s = self.windows[i]
        return f"{self.clips[k].path} frames {s}-{s + self.seq_len - 1}"

    def _clip_frames(self, k: int, start: int, stop: int) -> np.ndarray:
        """uint8 frames [start, stop) of clip k, (n, S, S)."""
        c = self.clips[k]
        if not c.is_video:
            return np.stack([_read_image(p, self.image_size) for p in c.files[start:stop]])
        # Videos cannot be seeked reliably: decode the whole clip, keep the last two per process.
        if k not in self._decoded:
            frames = _read_avi(c.path, self.image_size)
            if len(frames) < c.length:
                raise DataError(f"{c.path}: decoded {len(frames)} frames, expected {c.length}")
            self._decoded[k] = frames
            while len(self._decoded) > 2:
                self._decoded.popitem(last=False)
        return self._decoded[k][start:stop]

    def _load(self, i: int) -> np.ndarray:
        k, s = (int(v) for v in self.windows[i])
        if self.cache is not None:
            base = int(self.offsets[k]) + s
            x = self.cache[base : base + self.seq_len]
        else:
            x = self._clip_frames(k, s, s + self.seq_len)
        return (x.astype(np.float32) / 255.0)[:, None]  # (T, 1, S, S)

    def _open_cache(self, folder: Path) -> np.ndarray:
        """Memory-mapped uint8 (frames, S, S) of every frame of this split's clips.

        The file name hashes the clip list, frame counts and image size, so a changed data set
        gets a new file and an existing file is never overwritten; it is written under a
        temporary name and renamed when complete, so an interrupted build leaves no bad cache.
        """
        if folder.exists() and not folder.is_dir():
            raise DataError(f"{self.name}: cache_dir {folder} is not a folder")
        meta = {
            "image_size": self.image_size,
            "clips": [[str(c.path.relative_to(self.root)), c.length] for c in self.clips],
        }
        digest = hashlib.sha1(json.dumps(meta).encode()).hexdigest()[:16]
        path = folder / f"kth_{self.image_size}_{digest}.npy"  # val and test may share it
        shape = (int(self.offsets[-1]), self.image_size, self.image_size)
        if path.exists():
            try:
                cached = np.load(path, mmap_mode="r")
            except (ValueError, OSError) as e:
                raise DataError(f"{path}: unreadable KTH cache ({e}); delete it") from e
            if cached.shape != shape or cached.dtype != np.uint8:
                raise DataError(
                    f"{path}: KTH cache has shape {cached.shape}, expected {shape}; delete it"
                )
            return cached
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npy")
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            for k, c in enumerate(self.clips):
                lo = int(self.offsets[k])
                for s in range(0, c.length, 256):  # bounded memory for image folders
                    frames = self._clip_frames(k, s, min(c.length, s + 256))
                    out[lo + s : lo + s + len(frames)] = frames
                self._decoded.clear()
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return np.load(path, mmap_mode="r")

    def __getstate__(self) -> dict:
        # Decoded videos are a per-process cache; do not ship them to DataLoader workers.
        state = self.__dict__.copy()
        state["_decoded"] = OrderedDict()
        return state
