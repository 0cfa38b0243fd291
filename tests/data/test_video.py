"""Videos and frame folders as data: PyAV-written .mp4/.avi, PNG folders, options, splits,
the uint8 cache, and one line for every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mimcast.data import build_dataset, video
from mimcast.data.video import read_frames, write_video
from mimcast.errors import DataError


def ramp(n: int, h: int = 16, w: int = 20, c: int = 1) -> np.ndarray:
    """uint8 (n, c, h, w) frames whose brightness encodes the frame index (smooth, so lossy
    codecs keep it within a few levels)."""
    levels = (np.arange(n) * (200 // max(n - 1, 1)) + 20).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, c, h, w)).copy()


def write_pngs(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for k, f in enumerate(frames):  # frame-2 before frame-10: natural order
        Image.fromarray(f[0]).save(folder / f"frame-{k}.png")
    return folder


@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_a_written_video_reads_back_in_order(tmp_path, ext) -> None:
    frames = ramp(12)
    write_video(tmp_path / f"clip{ext}", frames, fps=10)
    back = read_frames(tmp_path / f"clip{ext}", size=None, fit="resize", channels=1)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames).max() <= 6  # lossy, but the order is kept
    rgb = read_frames(tmp_path / f"clip{ext}", size=(8, 10), fit="crop", channels=3)
    assert rgb.shape == (12, 3, 8, 10)


def test_time_split_of_one_video_never_overlaps(tmp_path) -> None:
    write_video(tmp_path / "long.mp4", ramp(40), fps=10)
    opts = {"root": tmp_path / "long.mp4", "seq_len": 4, "context_len": 2, "stride": 2}
    parts = {s: build_dataset("video", s, **opts) for s in ("train", "val", "test")}
    spans = {s: [(int(st), int(st) + 3) for _, st in p.windows] for s, p in parts.items()}
    assert max(e for _, e in spans["train"]) < min(s for s, _ in spans["val"])
    assert max(e for _, e in spans["val"]) < min(s for s, _ in spans["test"])
    assert max(e for _, e in spans["test"]) == 39  # the last part is the test part
    assert "by time" in parts["train"].split_rule
    x = parts["test"][0]
    assert x.shape == (4, 1, 16, 20) and float(x.max()) <= 1.0


def test_a_folder_of_clips_splits_by_file_with_options(tmp_path) -> None:
    for k in range(5):
        write_video(tmp_path / f"c{k}.avi", ramp(10, c=3), fps=5)
    (tmp_path / "notes.txt").write_text("not a clip")
    opts = {"seq_len": 5, "context_len": 2, "size": [8, 8], "channels": 3, "frame_stride": 2}
    ds = build_dataset("video", "train", root=tmp_path, **opts)
    assert (
        ds.frame_shape == (3, 8, 8) and "by file: 0.8/0.1/0.1 of the clips (3/1/1" in ds.split_rule
    )
    assert sorted({int(k) for k, _ in ds.windows}) == [0, 1, 2]  # val, test: a clip each
    assert len(ds) == 3  # 10 frames, every 2nd kept: one window of 5 per clip
    test = build_dataset("video", "test", root=tmp_path, **opts)
    assert {int(k) for k, _ in test.windows} == {4}


def test_png_frames_and_the_uint8_cache(tmp_path, monkeypatch) -> None:
    frames = ramp(12)
    write_pngs(tmp_path / "frames", frames)
    cache = tmp_path / "cache"
    ds = build_dataset("video", "train", root=tmp_path / "frames", seq_len=3, context_len=1,
                       cache_dir=cache)  # fmt: skip
    np.testing.assert_allclose(ds.to_units(ds[1]).numpy()[:, 0, 0, 0], frames[3:6, 0, 0, 0])
    (cached,) = cache.iterdir()
    assert np.load(cached, mmap_mode="r").dtype == np.uint8
    stamp = cached.stat().st_mtime_ns
    monkeypatch.setattr(video, "read_frames", _no_second_decode)
    again = build_dataset("video", "train", root=tmp_path / "frames", seq_len=3,
                          context_len=1, cache_dir=cache)  # fmt: skip
    assert isinstance(again.caches[0], np.memmap)  # decoded once, then mapped:
    assert cached.stat().st_mtime_ns == stamp and list(cache.iterdir()) == [cached]  # not rewritten
    np.testing.assert_array_equal(again[1].numpy(), ds[1].numpy())


def _no_second_decode(*args, **kwargs):
    raise AssertionError("the clip was decoded again although its cache file is there")


def test_textured_colour_frames_are_cropped_resized_and_turned_to_luma(tmp_path) -> None:
    """Random RGB texture (lossless PNG), so that a crop, a resize, a channel order and the
    luma weights each give other pixels."""
    rgb = np.random.default_rng(0).integers(0, 256, (4, 16, 24, 3), dtype=np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, f in enumerate(rgb):
        Image.fromarray(f).save(folder / f"frame-{k}.png")

    def frames(**opts) -> np.ndarray:
        return read_frames(folder, **{"size": None, "fit": "resize", "channels": 3, **opts})

    np.testing.assert_array_equal(frames(), rgb.transpose(0, 3, 1, 2))  # RGB, in order
    # (16, 24) -> (16, 16) by crop: already covering, so the centre 16 columns as they are
    np.testing.assert_array_equal(frames(size=(16, 16), fit="crop"),
                                  rgb[:, :, 4:20].transpose(0, 3, 1, 2))  # fmt: skip
    reference = [np.asarray(Image.fromarray(f).resize((16, 16), Image.Resampling.BILINEAR))
                 for f in rgb]  # fmt: skip
    np.testing.assert_array_equal(frames(size=(16, 16)), np.stack(reference).transpose(0, 3, 1, 2))
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601
    gray = frames(channels=1)
    assert gray.shape == (4, 1, 16, 24)
    assert np.abs(gray[:, 0].astype(np.float64) - luma).max() <= 0.5 + 1e-6


def test_bad_video_input(tmp_path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.avi").write_bytes(b"not a video at all" * 50)
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "readme.txt").write_text("no frames")
    mixed = tmp_path / "mixed"
    write_pngs(mixed, ramp(3))
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(mixed / "frame-9.png")
    short = tmp_path / "short.mp4"
    write_video(short, ramp(4), fps=4)
    cases = {
        tmp_path / "empty.mp4": "cannot decode",
        tmp_path / "junk.avi": "cannot decode",
        tmp_path / "none": "no video files and no image frames",
        mixed: "frames of different sizes",
        short: "holds no window of 20 frames",
        tmp_path / "missing.mp4": "does not exist",
    }
    for root, message in cases.items():
        with pytest.raises(DataError, match=message):
            build_dataset("video", "train", root=root)
    with pytest.raises(DataError, match="video: option channels must be one of 1, 3, got 2"):
        build_dataset("video", "train", root=short, channels=2)


def test_short_clips_get_one_val_and_test_window_long_ones_their_fractions() -> None:
    from mimcast.data.base import split_bounds, time_bounds

    assert time_bounds(68, (0.8, 0.1, 0.1), 20, "c") == {
        "train": (0, 28), "val": (28, 48), "test": (48, 68)
    }  # fmt: skip
    for n in (200, 795):  # windows fit in every part already: the fractions as they are
        assert time_bounds(n, (0.8, 0.1, 0.1), 20, "c") == split_bounds(n, (0.8, 0.1, 0.1), "c")
    short = time_bounds(50, (0.8, 0.1, 0.1), 20, "c")  # test grows; val cannot: train keeps 20
    assert short == {"train": (0, 25), "val": (25, 30), "test": (30, 50)}
    assert time_bounds(68, (0.8, 0.2, 0.0), 20, "c")["test"] == (68, 68)  # no test asked for


def test_max_size_brings_large_frames_down_and_leaves_small_ones(tmp_path) -> None:
    frames = (np.random.default_rng(0).random((12, 1, 30, 80)) * 255).astype(np.uint8)
    write_video(tmp_path / "clip.avi", frames, fps=4)
    opts = dict(root=tmp_path / "clip.avi", seq_len=4, context_len=2, cache_dir=tmp_path / "c")
    assert build_dataset("video", "train", max_size=64, **opts).frame_shape == (1, 30, 64)
    assert build_dataset("video", "train", max_size=100, **opts).frame_shape == (1, 30, 80)
    assert build_dataset("video", "train", max_size=64, size=16, **opts).frame_shape == (1, 16, 16)


def test_the_cache_goes_to_mimcast_cache_else_home_cache(tmp_path, monkeypatch) -> None:
    write_pngs(tmp_path / "frames", ramp(6))
    opts = dict(root=tmp_path / "frames", seq_len=3, context_len=1)
    monkeypatch.setenv("MIMCAST_CACHE", str(tmp_path / "chosen"))
    build_dataset("video", "train", **opts)
    assert [p.suffix for p in (tmp_path / "chosen").iterdir()] == [".npy"]
    monkeypatch.delenv("MIMCAST_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # Path.home(): ~/.cache/mimcast
    build_dataset("video", "train", **opts)
    assert [p.suffix for p in (tmp_path / "home" / ".cache" / "mimcast").iterdir()] == [".npy"]
