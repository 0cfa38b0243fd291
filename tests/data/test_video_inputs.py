"""Videos and frame folders as a careless user gives them (issue #24): 16-bit frames, frames
overwritten in place, broken links among the clips, a full cache disk, odd $MIMCAST_CACHE
values, options of the wrong type, and folders of 3 to 7 clips. Each on real files the test
writes: the right frames, or one line, exit 2 and nothing left behind."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mimcast.data import build_dataset
from mimcast.data.video import read_frames, write_video
from mimcast.errors import DataError
from tests.helpers import assert_one_line_error, listing, run_cli
from tests.runs.test_full_disk import fill, small_fs

from .test_video import ramp, write_pngs
from .writers import write_png16

LEVELS = np.array([0, 255, 256, 1000, 30000, 40000, 65535], np.uint16)


def gray16(n: int = 7, h: int = 6, w: int = 8) -> np.ndarray:
    """uint16 (n, h, w): frame k at LEVELS[k], with its last column at 65535 - LEVELS[k]."""
    frames = np.broadcast_to(LEVELS[:n, None, None], (n, h, w)).copy()
    frames[:, :, -1] = 65535 - LEVELS[:n, None]
    return frames


def info(capsys, root: Path, *sets: str) -> tuple[int, str, str]:
    sets = ("data.options.seq_len=3", "data.options.context_len=1", "data.options.stride=3", *sets)
    return run_cli(capsys, "data", "info", "--data", "video", "--data-root", root, "--set", *sets)


# ---------------- 16-bit and other wide frames (item 1)
def test_16_bit_gray_png_frames_keep_their_values(tmp_path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(gray16()):
        Image.fromarray(frame).save(folder / f"f{k}.png")
    with Image.open(folder / "f1.png") as img:
        assert img.mode == "I;16"  # what Pillow reads a 16-bit gray PNG as
    got = read_frames(folder, size=None, fit="resize", channels=1)[:, 0]
    np.testing.assert_array_equal(got[:, 0, 0], LEVELS >> 8)  # 65535 -> 255, 1000 -> 3
    np.testing.assert_array_equal(got[:, 0, -1], (65535 - LEVELS) >> 8)
    rgb = read_frames(folder, size=None, fit="resize", channels=3)
    np.testing.assert_array_equal(rgb[:, :, 0, 0], np.repeat((LEVELS >> 8)[:, None], 3, 1))


def test_16_bit_gray_with_alpha_and_32_bit_frames(tmp_path) -> None:
    alpha = tmp_path / "alpha"
    alpha.mkdir()
    for k, frame in enumerate(gray16(4)):
        write_png16(alpha / f"f{k}.png", np.stack([frame, np.full_like(frame, 65535)], -1))
    got = read_frames(alpha, size=None, fit="resize", channels=1)
    np.testing.assert_array_equal(got[:, 0, 0, 0], LEVELS[:4] >> 8)
    wide = tmp_path / "wide"
    wide.mkdir()
    for k, frame in enumerate(gray16(4)):  # mode I: 32-bit integers, here within 16 bits
        Image.fromarray(frame.astype(np.int32)).save(wide / f"f{k}.tif")
    with Image.open(wide / "f0.tif") as img:
        assert img.mode == "I"
    got = read_frames(wide, size=None, fit="resize", channels=1)
    np.testing.assert_array_equal(got[:, 0, 0, 0], LEVELS[:4] >> 8)
    Image.fromarray(np.full((6, 8), 70_000, np.int32)).save(wide / "f9.tif")
    with pytest.raises(DataError, match=r"f9.tif: 32-bit pixel values beyond 0-65535"):
        read_frames(wide, size=None, fit="resize", channels=1)


def test_float_frames_are_refused_with_one_line(tmp_path, capsys) -> None:
    folder = tmp_path / "float"
    folder.mkdir()
    for k in range(30):  # enough frames for every split: the pixels are what is refused
        Image.fromarray(np.full((6, 8), k / 30, np.float32)).save(folder / f"f{k}.tif")
    before = listing(tmp_path)
    code, _, err = info(capsys, folder)
    assert_one_line_error(code, err, "f0.tif: floating-point pixels have no fixed range")
    assert listing(tmp_path) == before


# ---------------- the cache of a frame folder (item 7)
def test_frames_overwritten_in_place_are_decoded_again(tmp_path) -> None:
    folder = write_pngs(tmp_path / "frames", ramp(6))
    opts = {"root": folder, "seq_len": 3, "context_len": 1, "cache_dir": tmp_path / "cache"}
    first = build_dataset("video", "train", **opts)
    assert first.to_units(first[0]).numpy()[0, 0, 0, 0] == 20
    folder_time, frame_time = folder.stat().st_mtime_ns, (folder / "frame-0.png").stat()
    time.sleep(0.05)  # later than the file system's clock step
    for k in range(6):  # the same names, new pixels: the folder's own time stays
        Image.fromarray(np.full((16, 20), 200 - k, np.uint8)).save(folder / f"frame-{k}.png")
    assert folder.stat().st_mtime_ns == folder_time
    assert (folder / "frame-0.png").stat().st_mtime_ns != frame_time.st_mtime_ns
    again = build_dataset("video", "train", **opts)
    np.testing.assert_array_equal(again.to_units(again[0]).numpy()[:, 0, 0, 0], [200, 199, 198])
    assert len(list((tmp_path / "cache").iterdir())) == 2  # the old frames' entry, the new


# ---------------- broken links among the clips (item 13)
@pytest.mark.parametrize("fault", ["dangling", "loop"])
def test_a_broken_link_among_clips_is_one_line_before_any_cache(
    tmp_path, capsys, monkeypatch, fault
):
    clips, cache = tmp_path / "clips", tmp_path / "cache"
    clips.mkdir()
    monkeypatch.setenv("MIMCAST_CACHE", str(cache))
    for name in ("a.avi", "b.avi"):
        write_video(clips / name, ramp(8), fps=4)
    broken = clips / "z.avi"  # sorted last: the others would be cached first
    os.symlink("gone.avi" if fault == "dangling" else "z.avi", broken)
    before = listing(tmp_path)
    code, _, err = info(capsys, clips)
    why = "which does not exist" if fault == "dangling" else "a loop of symbolic links"
    assert_one_line_error(code, err, f"{broken}: cannot read it: ")
    assert why in err and not cache.exists()
    assert listing(tmp_path) == before


def test_a_broken_link_among_frames_is_one_line(tmp_path, capsys) -> None:
    folder = write_pngs(tmp_path / "frames", ramp(5))
    os.symlink("frame-99.png", folder / "frame-5.png")
    before = listing(tmp_path)
    code, _, err = info(capsys, folder)
    assert_one_line_error(code, err, "frame-5.png: cannot read it: a symbolic link to frame-99")
    assert listing(tmp_path) == before


# ---------------- the cache on a full disk, and where the cache is (items 14, 15)
def test_a_full_cache_disk_gives_the_data_and_no_partial_file(tmp_path, capsys, monkeypatch):
    clip = tmp_path / "clip.avi"
    write_video(clip, ramp(40, h=64, w=64), fps=4)  # 160 KB of decoded frames
    with small_fs(tmp_path / "fs", 512) as fs:
        monkeypatch.setenv("MIMCAST_CACHE", str(fs / "cache"))
        (fs / "cache").mkdir()
        fill(fs, leave_kb=48)
        for _ in range(2):  # one run after another: no leftover from either
            code, out, err = info(capsys, clip)
            assert code == 0, err
            assert "train: 10 windows of 3 frames" in out  # 32 of 40 frames, windows every 3
            assert list((fs / "cache").iterdir()) == []


def test_an_empty_or_home_relative_mimcast_cache(tmp_path, monkeypatch) -> None:
    folder = write_pngs(tmp_path / "frames", ramp(6))
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    for value, cache in (("", home / ".cache" / "mimcast"), ("~/c", home / "c")):
        monkeypatch.setenv("MIMCAST_CACHE", value)
        build_dataset("video", "train", root=folder, seq_len=3, context_len=1)
        assert len(list(cache.glob("video-*.npy"))) == 1, value
        assert list(here.iterdir()) == []  # nothing in the current folder, no ./~
    build_dataset("video", "train", root=folder, seq_len=3, context_len=1, cache_dir="~/o")
    assert len(list((home / "o").glob("video-*.npy"))) == 1


# ---------------- options of the wrong type (items 8, 10)
@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("size=true", "video: option size must be an integer, got True"),
        ("size=100000", "video: option size must be <= 4096, got 100000"),
        ("size=[48,0]", "video: option size must be >= 1, got 0"),
        ("frame_stride=1.5", "video: option frame_stride must be an integer, got 1.5"),
        ("channels=1.7", "video: option channels must be an integer, got 1.7"),
        ("channels=2", "video: option channels must be one of 1, 3, got 2"),
        ("fit=stretch", "video: option fit must be one of resize, crop, got 'stretch'"),
        ("stride=0", "video: option stride must be >= 1, got 0"),
    ],
)
def test_video_options_of_the_wrong_type_are_one_line(
    tmp_path, capsys, monkeypatch, option, message
):
    folder = write_pngs(tmp_path / "frames", ramp(30))  # a clip that works with valid options
    monkeypatch.setenv("MIMCAST_CACHE", str(tmp_path / "cache"))
    assert info(capsys, folder)[0] == 0
    shutil.rmtree(tmp_path / "cache")
    before = listing(tmp_path)
    code, _, err = info(capsys, folder, f"data.options.{option}")
    assert_one_line_error(code, err, message)
    assert listing(tmp_path) == before


# ---------------- a split by file for every count of clips the README allows (item 16)
@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_every_folder_of_three_clips_or_more_splits_by_file(tmp_path, n) -> None:
    for k in range(n):
        write_video(tmp_path / f"c{k}.avi", ramp(60, h=8, w=8), fps=4)
    opts = {"root": tmp_path, "seq_len": 20, "context_len": 10, "stride": 20, "size": 8}
    parts = {s: build_dataset("video", s, **opts) for s in ("train", "val", "test")}
    clips = {s: sorted({int(k) for k, _ in p.windows}) for s, p in parts.items()}
    assert clips == {"train": list(range(n - 2)), "val": [n - 2], "test": [n - 1]}
    assert f"({n - 2}/1/1 of {n})" in parts["train"].split_rule
    assert {len(p) for p in parts.values()} == {3} | {3 * (n - 2)}  # 60 frames: 3 windows


def test_five_clips_of_sixty_frames_from_the_command_line(tmp_path, capsys) -> None:
    for k in range(5):
        write_video(tmp_path / f"c{k}.avi", ramp(60, h=8, w=8), fps=4)
    sets = ("data.options.seq_len=20", "data.options.stride=20")
    code, out, err = run_cli(capsys, "data", "info", "--data", "video", "--data-root", tmp_path,
                             "--set", *sets)  # fmt: skip
    assert code == 0, err
    assert "train: 9 windows" in out and "val: 3 windows" in out and "test: 3 windows" in out


def test_two_clips_split_by_file_name_the_way_out(tmp_path) -> None:
    for k in range(2):
        write_video(tmp_path / f"c{k}.avi", ramp(30, h=8, w=8), fps=4)
    with pytest.raises(DataError, match="2 clip.s. cannot be split by file into 3 parts: give "
                                        "data.options.split_by=time"):  # fmt: skip
        build_dataset("video", "train", root=tmp_path, seq_len=4, context_len=2, split_by="file")
    assert len(build_dataset("video", "test", root=tmp_path, seq_len=3, context_len=1)) == 2
