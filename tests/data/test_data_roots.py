"""Data roots as people lay them out (the folder that holds the files, OpenSTL's data/<name>/
layouts) and custom arrays read without axis options, each guess stated in `note`."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from mimcast.data import build_dataset
from mimcast.errors import DataError
from tests.helpers import run_cli

from .writers import taxibj_dates, write_frames, write_taxibj


def mnist_seq(path, n: int = 3) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(0).integers(0, 256, (20, n, 64, 64), dtype=np.uint8)
    np.save(path, arr)
    return arr


@pytest.mark.parametrize(
    "where", ["mnist_test_seq.npy", "moving_mnist/mnist_test_seq.npy",
              "data/moving_mnist/mnist_test_seq.npy"],
)  # fmt: skip
def test_mmnist_file_from_the_folder_that_holds_it(tmp_path, where) -> None:
    arr = mnist_seq(tmp_path / where)
    ds = build_dataset("mmnist-file", "test", root=tmp_path)
    assert ds.source == str(tmp_path / where) and len(ds) == 3
    np.testing.assert_allclose(ds.to_units(ds[1])[:, 0].numpy(), arr[:, 1], atol=1e-3)


def test_several_candidates_say_which_was_taken(tmp_path, capsys) -> None:
    mnist_seq(tmp_path / "mnist_test_seq.npy")
    mnist_seq(tmp_path / "moving_mnist" / "mnist_test_seq.npy", n=5)
    ds = build_dataset("mmnist-file", "test", root=tmp_path)
    assert len(ds) == 3 and "took" in ds.note and "moving_mnist/mnist_test_seq.npy" in ds.note
    code, out, err = run_cli(capsys, "data", "info", "--data", "mmnist-file", "--data-root",
                             tmp_path)  # fmt: skip
    assert code == 0, err
    taken = tmp_path / "mnist_test_seq.npy"
    assert f"data set: mmnist-file from {taken}\n" in out
    assert f"note: took {taken} (also there: moving_mnist/mnist_test_seq.npy)" in out
    assert "test: 3 windows of 20 frames" in out  # the 3 sequences of the file taken, not 5
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is a folder without mnist_test_seq.npy"):
        build_dataset("mmnist-file", "test", root=tmp_path / "empty")


@pytest.mark.parametrize("layout", ["kth", "data/kth"])
def test_kth_in_openstl_layouts(tmp_path, layout) -> None:
    kth = tmp_path / layout
    write_frames(kth / "boxing" / "person01_boxing_d1_uncomp", list(range(10, 22)))
    ds = build_dataset("kth", "train", root=tmp_path, seq_len=4, context_len=2, image_size=8)
    assert len(ds) == 3  # 12 frames: windows of 4 at 0, 4 and 8
    assert str(kth) in ds.note  # the folder taken is named in full


@pytest.mark.parametrize("layout", ["taxibj", "data/taxibj"])
def test_taxibj_in_openstl_layouts(tmp_path, layout) -> None:
    days = [dt.date(2014, 3, 1) + dt.timedelta(days=k) for k in range(12)]
    folder = tmp_path / layout
    folder.mkdir(parents=True)
    write_taxibj(folder / "BJ14_M32x32_T30_InOut.h5", taxibj_dates(days), hw=4)
    # 8 training days of 48 slots, then 2 val and 2 test: windows of 8 slots every 1
    for split, windows in (("train", 8 * 48 - 7), ("val", 2 * 48 - 7), ("test", 2 * 48 - 7)):
        ds = build_dataset("taxibj", split, root=tmp_path, test_days=2, val_days=2)
        assert ds.note == f"took the files in {folder}" and len(ds) == windows, split


@pytest.mark.parametrize(
    ("shape", "frame", "layout"),
    [((40, 6, 6), (1, 6, 6), "(T, H, W)"), ((40, 2, 6, 6), (2, 6, 6), "(T, C, H, W)"),
     ((10, 12, 2, 6, 6), (2, 6, 6), "(N, T, C, H, W)")],
)  # fmt: skip
def test_custom_arrays_without_axis_options(tmp_path, shape, frame, layout) -> None:
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    ds = build_dataset("custom", "train", root=tmp_path / "a.npy", seq_len=6, context_len=3)
    assert ds.frame_shape == frame and layout in ds.note
    first = ds.to_units(ds[0]).numpy()  # (6, C, H, W) in the file's units
    expected = x[:6] if len(shape) < 5 else x[0, :6]
    np.testing.assert_allclose(first, expected.reshape(first.shape), rtol=1e-5, atol=1e-6)
    np.save(tmp_path / "r6.npy", np.zeros((2, 2, 2, 2, 2, 2), np.float32))
    with pytest.raises(DataError, match="rank 6"):
        build_dataset("custom", "train", root=tmp_path / "r6.npy", seq_len=2, context_len=1)
