"""Videos and folders of frames as data: `--data video --data-root PATH`.

PATH is a video file (.mp4, .avi, .mov, .mkv, .gif, decoded with PyAV), a folder of such
files (each a clip), a folder of numbered image frames (PNG/JPG/TIFF, 8 or 16 bits: one clip),
or a folder of such frame folders (each a clip). Frames become `channels` 1 (luma) or 3 (RGB),
of `size` (H, W) by "resize" (stretched) or "crop" (scaled to cover, then centre-cropped) or,
without `size`, of their own size with each side at most `max_size`; every `frame_stride`-th
frame kept. Each clip is decoded once into a uint8 memory-mapped cache
(`cache_dir`, default $MIMCAST_CACHE or ~/.cache/mimcast), keyed on the clip's files (names,
sizes, modification times) and the options, so long videos stream from disk instead of filling
memory, and later runs start at once. Every clip is checked readable before any is cached.

Splits: by file when there are at least three clips (in sorted order, by `fractions`, each
split of a non-zero fraction given one clip at least: 3 clips 1/1/1, 5 clips 3/1/1), else by
time within each clip (the first part train, then val, the last part test; a part too short
for one window is grown to one, `time_bounds`); windows of
`seq_len` frames every `stride` frames never cross a cut. Model units: intensity in [0, 1].
The options' types and bounds are the annotations of `VideoDataset.__init__`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated

import numpy as np

from mimcast.errors import DataError, StorageError
from mimcast.fs import atomic_write_with
from mimcast.settings import Rule

from .base import (
    PIXEL,
    PIXEL_UNITS,
    SequenceDataset,
    check_lengths,
    check_split,
    file_bounds,
    require_path,
    time_bounds,
    window_starts,
)

VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".gif", ".webm", ".m4v"}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
FITS = ("resize", "crop")
MAX_SIDE = 4096  # frames of up to 4096 x 4096 (4K video); data.options.size=100000 is a typo


def _natural(name: str) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def _images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT),
                  key=lambda p: _natural(p.name))  # fmt: skip


def find_clips(root: Path) -> list[Path]:
    """Video files, or frame folders, that make the clips of PATH (see the module doc)."""
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXT:
            raise DataError(f"{root}: not a video file ({', '.join(sorted(VIDEO_EXT))})")
        return [root]
    videos = sorted((p for p in root.iterdir() if p.suffix.lower() in VIDEO_EXT),
                    key=lambda p: _natural(p.name))  # fmt: skip
    if videos:
        return videos
    if _images(root):
        return [root]
    folders = sorted((p for p in root.iterdir() if p.is_dir() and _images(p)),
                     key=lambda p: _natural(p.name))  # fmt: skip
    if not folders:
        raise DataError(f"{root}: no video files and no image frames in it")
    return folders


def _capped(shape: tuple[int, int], max_size: int | None) -> tuple[int, int] | None:
    """The frame size with each side at most max_size (None: the frames' own)."""
    if max_size is None or max(shape) <= max_size:
        return None
    return min(shape[0], max_size), min(shape[1], max_size)


def _fit(frame: np.ndarray, size: tuple[int, int] | None, fit: str) -> np.ndarray:
    """(H, W, C) uint8 -> size by `fit`."""
    if size is None or frame.shape[:2] == tuple(size):
        return frame
    from PIL import Image

    h, w = size
    img = Image.fromarray(frame.squeeze(-1) if frame.shape[-1] == 1 else frame)
    if fit == "crop":  # scale to cover (H, W), then centre-crop
        k = max(h / img.height, w / img.width)
        img = img.resize((max(w, round(img.width * k)), max(h, round(img.height * k))),
                         Image.Resampling.BILINEAR)  # fmt: skip
        left, top = (img.width - w) // 2, (img.height - h) // 2
        img = img.crop((left, top, left + w, top + h))
    else:
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    out = np.asarray(img)
    return out[..., None] if out.ndim == 2 else out


def _color(frame: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, 3 or 1 or 4) uint8 -> (H, W, channels)."""
    if frame.ndim == 2:
        frame = frame[..., None]
    frame = frame[..., :3]
    if channels == 3:
        return np.repeat(frame, 3, axis=2) if frame.shape[-1] == 1 else frame
    if frame.shape[-1] == 1:
        return frame
    luma = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(luma + 0.5, 0, 255).astype(np.uint8)[..., None]


def _decoded(path: Path) -> Iterator[np.ndarray]:
    """The frames of a clip, (H, W, C) uint8, in order."""
    return _image_frames(path) if path.is_dir() else _video_frames(path)


def _image_frames(folder: Path) -> Iterator[np.ndarray]:
    from PIL import Image

    for p in _images(folder):
        try:
            with Image.open(p) as img:
                yield _pixels(img, p)
        except OSError as e:
            raise DataError(f"{p}: cannot read the image ({e})") from e


def _pixels(img, path: Path) -> np.ndarray:
    """An image's pixels as uint8 (H, W) or (H, W, C). 16-bit gray (Pillow's I;16 modes; I, as
    older Pillow reads a 16-bit PNG) keeps its high byte, as Pillow reads 16-bit RGB and gray
    with alpha; Pillow's own convert() would clip every value above 255 to white."""
    if img.mode in ("L", "RGB"):
        return np.asarray(img)
    if img.mode.startswith("I;16") or img.mode == "I":
        wide = np.asarray(img).astype(np.int64)
        if img.mode == "I" and (wide.min() < 0 or wide.max() > 65535):
            raise DataError(f"{path}: 32-bit pixel values beyond 0-65535 ({wide.min()} to "
                            f"{wide.max()}): save the frames as 8- or 16-bit images")  # fmt: skip
        return (wide >> 8).astype(np.uint8)
    if img.mode == "F":
        raise DataError(f"{path}: floating-point pixels have no fixed range to read as 0-255: "
                        "save the frames as 8- or 16-bit images")  # fmt: skip
    return np.asarray(img.convert("RGB"))


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream in it")
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, OSError) as e:
        raise DataError(f"{path}: cannot decode the video ({e})") from e


def read_frames(
    path: Path,
    *,
    size: tuple[int, int] | None,
    fit: str,
    channels: int,
    frame_stride: int = 1,
    max_size: int | None = None,
) -> np.ndarray:
    """All kept frames of a clip as uint8 (N, C, H, W); one line for anything wrong. Without
    `size`, a side longer than `max_size` is brought down to it (by `fit`)."""
    if path.is_dir() and not _images(path):
        raise DataError(f"{path}: no image frames ({', '.join(sorted(IMAGE_EXT))}) in it")
    out, first_shape = [], None
    for k, frame in enumerate(_decoded(path)):
        first_shape = frame.shape[:2] if first_shape is None else first_shape
        if frame.shape[:2] != first_shape:  # one clip's frames: of one size
            raise DataError(
                f"{path}: frames of different sizes ({first_shape} and {frame.shape[:2]} "
                f"at frame {k})"
            )
        if k % frame_stride:
            continue
        target = size or _capped(first_shape, max_size)
        out.append(_color(_fit(frame, target, fit), channels).transpose(2, 0, 1))
    if not out:
        raise DataError(f"{path}: no frames could be decoded (an empty or damaged video?)")
    return np.stack(out)


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """The cache folder: the cache_dir option, else $MIMCAST_CACHE, else ~/.cache/mimcast; an
    empty one counts as not given (it would mean the current folder), `~` is expanded."""
    for given in (cache_dir, os.environ.get("MIMCAST_CACHE")):
        if given is not None and str(given).strip():
            return Path(given).expanduser()
    return Path.home() / ".cache" / "mimcast"


def clip_files(clip: Path) -> list[list]:
    """What a clip's cache is keyed on: each file's name, size and modification time (frames
    overwritten in place change these, not their folder's time). A broken symbolic link or a
    loop of them is a DataError here, before any clip is decoded or cached."""
    out = []
    for f in _images(clip) if clip.is_dir() else [clip]:
        try:
            st = f.stat()
        except OSError as e:
            raise DataError(f"{f}: cannot read it: {_unreadable(f, e)}") from e
        out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


def _unreadable(path: Path, e: OSError) -> str:
    if not path.is_symlink():
        return e.strerror or str(e)
    if e.errno == errno.ELOOP:
        return "a loop of symbolic links"
    return f"a symbolic link to {os.readlink(path)}, which does not exist"


class VideoDataset(SequenceDataset):
    """Clips of video or image frames; items (seq_len, C, H, W) in [0, 1] (module docstring)."""

    name = "video"
    units = PIXEL_UNITS
    normalizer = PIXEL
    # What `mimcast train --data video` uses unless told otherwise, measured on real clips
    # (docs/footage.md): sides of at most 64 pixels (a 2-core CPU trains those in minutes;
    # smaller frames keep their size) and a window starting at every frame (a single clip
    # gives hundreds of sequences instead of a few dozen). Not the residual model: it won on
    # one clip and collapsed to persistence on two others.
    run_defaults = {"data": {"options": {"max_size": 64, "stride": 1}}}

    def __init__(
        self,
        root: str | os.PathLike | None,
        split: str = "train",
        *,
        seq_len: int = 20,
        context_len: int = 10,
        size: Annotated[Sequence[int] | int | None, Rule(low=1, high=MAX_SIDE)] = None,
        max_size: Annotated[int | None, Rule(low=1, high=MAX_SIDE)] = None,
        fit: Annotated[str, Rule(choices=FITS)] = "resize",
        channels: Annotated[int, Rule(choices=(1, 3))] = 1,
        frame_stride: Annotated[int, Rule(low=1)] = 1,
        stride: Annotated[int | None, Rule(low=1)] = None,
        split_by: Annotated[str, Rule(choices=("auto", "file", "time"))] = "auto",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        # Option types and bounds: checked from these annotations (SequenceDataset)
        self.split = check_split(split, self.name)
        self.seq_len, self.context_len = check_lengths(seq_len, context_len, self.name)
        self.root = require_path(root, self.name)
        self.source = str(self.root)
        self.size, self.max_size = _size(size), max_size
        self.fit, self.channels, self.frame_stride = fit, channels, frame_stride
        self.stride = stride if stride is not None else self.seq_len
        clips = find_clips(self.root)
        keys = [clip_files(c) for c in clips]  # every clip checked before any is cached
        self.caches = [self._cached(c, k, cache_root(cache_dir)) for c, k in zip(clips, keys)]
        shapes = {c.shape[1:] for c in self.caches}
        if len(shapes) > 1:
            raise DataError(
                f"{self.root}: clips of different frame sizes {sorted(shapes)}: give "
                "data.options.size"
            )
        self.frame_shape = tuple(int(v) for v in self.caches[0].shape[1:])  # type: ignore
        by_file = split_by == "file" or (split_by == "auto" and len(clips) >= 3)
        self.windows = self._windows(clips, by_file, fractions)

    def _cached(self, clip: Path, files: list[list], folder: Path) -> np.ndarray:
        """The clip's kept frames, decoded once into a uint8 memmap (reused while the clip's
        files (`clip_files`) and the decoding options are the same)."""
        key = json.dumps([str(clip.resolve()), files, self.size, self.max_size, self.fit,
                          self.channels, self.frame_stride])  # fmt: skip
        path = folder / f"video-{hashlib.sha1(key.encode()).hexdigest()[:20]}.npy"
        if path.is_file():
            try:
                return np.load(path, mmap_mode="r")
            except (ValueError, OSError):
                pass  # a damaged cache file of ours: decoded again below
        frames = read_frames(clip, size=self.size, max_size=self.max_size, fit=self.fit,
                             channels=self.channels,
                             frame_stride=self.frame_stride)  # fmt: skip
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_with(path, lambda f: np.save(f, frames))
            return np.load(path, mmap_mode="r")
        except (OSError, StorageError):  # no room or no right to cache: frames in memory
            return frames

    def _windows(self, clips: list[Path], by_file: bool, fractions) -> np.ndarray:
        rows = []
        if by_file:
            bounds = file_bounds(len(clips), fractions, str(self.root))
            for k in range(*bounds[self.split]):
                starts = window_starts(0, len(self.caches[k]), self.seq_len, self.stride)
                rows += [(k, int(s)) for s in starts]
            counts = "/".join(str(b - a) for a, b in bounds.values())
            self.split_rule = (f"by file: {'/'.join(f'{f:g}' for f in fractions)} of the clips "
                               f"({counts} of {len(clips)})")  # fmt: skip
        else:
            for k, frames in enumerate(self.caches):
                a, b = time_bounds(len(frames), fractions, self.seq_len, str(clips[k]))[self.split]
                rows += [(k, int(s)) for s in window_starts(a, b, self.seq_len, self.stride)]
            self.split_rule = (
                f"by time: the first {fractions[0]:g} of each clip train, then "
                f"{fractions[1]:g} val, the last {fractions[2]:g} test"
            )
        self.split_rule += f"; windows of {self.seq_len} frames every {self.stride}, none across"
        if not rows:
            raise DataError(
                f"{self.root}: the {self.split} split holds no window of {self.seq_len} frames "
                f"({sum(len(c) for c in self.caches)} frames in {len(clips)} clip(s)): give "
                "longer clips, a shorter seq_len or other data.options.fractions"
            )
        return np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.windows)

    def _where(self, i: int) -> str:
        k, s = self.windows[i]
        return f"{self.root} clip {k} frames {s}-{s + self.seq_len - 1}"

    def _load(self, i: int) -> np.ndarray:
        k, s = (int(v) for v in self.windows[i])
        return self.caches[k][s : s + self.seq_len].astype(np.float32) / 255.0


def _size(size: Sequence[int] | int | None) -> tuple[int, int] | None:
    if size is None:
        return None
    values = [size, size] if isinstance(size, int) else list(size)
    if len(values) != 2:
        raise DataError(f"video: option size must be H or [H, W], got {size!r}")
    return values[0], values[1]


CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264",
          ".avi": "mpeg4", ".webm": "libvpx-vp9"}  # fmt: skip


def write_video(path: Path, frames: np.ndarray, fps: float = 4.0) -> None:
    """uint8 frames (T, C, H, W), C 1 or 3, as a video file whose codec the extension names.
    H.264 keeps odd frame sizes (4:4:4 chroma then); MPEG-4 and VP9 pad them by a pixel."""
    import av

    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        raise DataError(f"{path}: cannot write a video of this kind ({', '.join(CODECS)})")
    t, c, h, w = frames.shape
    rgb = np.repeat(frames, 3, axis=1) if c == 1 else frames
    odd = h % 2 or w % 2
    pix_fmt = "yuv444p" if odd and codec == "libx264" else "yuv420p"
    if pix_fmt == "yuv420p":
        rgb = np.pad(rgb, ((0, 0), (0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    with av.open(str(path), "w", format=_container(path)) as out:
        stream = out.add_stream(codec, rate=max(1, round(fps)))
        stream.width, stream.height, stream.pix_fmt = rgb.shape[3], rgb.shape[2], pix_fmt
        for frame in rgb:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.transpose(1, 2, 0)),
                                               format="rgb24")  # fmt: skip
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _container(path: Path) -> str:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi",
            ".webm": "webm"}[path.suffix.lower()]  # fmt: skip
