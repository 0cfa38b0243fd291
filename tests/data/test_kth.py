"""KTH: frame folders and .avi, persons split, stride rules, lazy and cached windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimcast.data import KTH, build_dataset
from mimcast.errors import DataError

from .writers import write_avi, write_frames


@pytest.fixture()
def kth_root(tmp_path):
    root = tmp_path / "kth"
    # Frame values encode (clip, frame index) so tests can check order and origin.
    write_frames(root / "boxing" / "person01_boxing_d1_uncomp", [10 + k for k in range(12)])
    write_frames(root / "person02_running_d1_uncomp", [100 + k for k in range(9)])
    write_frames(root / "boxing" / "person17_boxing_d1_uncomp", [50 + k for k in range(9)])
    write_avi(root / "person18_jogging_d2_uncomp.avi", [20 * k for k in range(10)])
    (root / "README.txt").write_text("not a clip")
    return root


def test_train_windows_strides_and_values(kth_root) -> None:
    ds = build_dataset("kth", "train", root=kth_root, seq_len=4, context_len=2, image_size=8)
    assert [c.person for c in ds.clips] == [1, 2]
    # boxing: 12 frames, step seq_len=4 -> 0, 4, 8; running: 9 frames, step 3 -> 0, 3.
    assert ds.windows.tolist() == [[0, 0], [0, 4], [0, 8], [1, 0], [1, 3]]
    x = ds[2]
    assert x.shape == (4, 1, 8, 8) and x.dtype == torch.float32 and ds.frame_shape == (1, 8, 8)
    np.testing.assert_allclose(x[:, 0, 0, 0].numpy() * 255, [18, 19, 20, 21], atol=1e-4)
    np.testing.assert_allclose(ds.to_units(ds[4])[:, 0, 4, 4], [103, 104, 105, 106], atol=1e-3)
    assert ds.value_range == (0.0, 1.0) and "0-255" in ds.units
    # the default persons, in ranges: 1-16 train, 17-25 test (and val, the reference protocol)
    assert ds.split_rule.startswith("by person: train 1-16; val 17-25; test 17-25;")


def test_test_split_reads_avi_and_defaults(kth_root) -> None:
    ds = KTH(kth_root, "test", seq_len=4, context_len=2, image_size=8)
    assert [(c.person, c.action, c.is_video) for c in ds.clips] == [
        (17, "boxing", False),
        (18, "jogging", True),
    ]
    assert ds.windows.tolist() == [[0, 0], [0, 4], [1, 0], [1, 3], [1, 6]]
    x = ds[3]  # avi frames 3..6, MJPG is lossy on gray levels by a little
    np.testing.assert_allclose(x[:, 0].mean(axis=(1, 2)).numpy() * 255, [60, 80, 100, 120], atol=3)
    val = KTH(kth_root, "val", seq_len=4, context_len=2, image_size=8)
    assert [c.person for c in val.clips] == [17, 18]  # reference practice: val = test persons
    held = KTH(kth_root, "train", seq_len=4, context_len=2, image_size=8, val_persons=[2])
    assert [c.person for c in held.clips] == [1]
    with pytest.raises(DataError, match="shorter than one window of 30"):
        KTH(kth_root, "test", image_size=8)  # default test windows are 10 -> 20


def test_cache_is_uint8_memmap_reused_and_identical(kth_root, tmp_path) -> None:
    opts = {"seq_len": 4, "context_len": 2, "image_size": 8}
    lazy = KTH(kth_root, "test", **opts)
    cached = KTH(kth_root, "test", cache_dir=tmp_path / "cache", **opts)
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"  # no temporary file left
    assert isinstance(cached.cache, np.memmap) and cached.cache.dtype == np.uint8
    assert cached.cache.shape == (19, 8, 8)  # 9 + 10 frames, never a float array
    for i in range(len(lazy)):
        assert torch.equal(lazy[i], cached[i])
    stamp = files[0].stat().st_mtime_ns
    again = KTH(kth_root, "test", cache_dir=tmp_path / "cache", **opts)
    assert files[0].stat().st_mtime_ns == stamp and torch.equal(again[4], lazy[4])


def test_bad_kth_input(tmp_path, kth_root) -> None:
    with pytest.raises(DataError, match="does not exist"):
        KTH(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no KTH clips"):
        KTH(tmp_path / "empty", seq_len=4, context_len=2)
    with pytest.raises(DataError, match="unknown action"):
        KTH(kth_root, actions=["dancing"])
    with pytest.raises(DataError, match="needs root"):
        build_dataset("kth", "train")
    broken = tmp_path / "b" / "person03_walking_d1_uncomp.avi"
    broken.parent.mkdir()
    broken.write_bytes(b"not a video")
    with pytest.raises(DataError, match="person03_walking_d1_uncomp.avi: cannot open video"):
        KTH(tmp_path / "b", seq_len=4, context_len=2)
    with pytest.raises(DataError, match="is not a folder"):
        KTH(kth_root, seq_len=4, context_len=2, cache_dir=kth_root / "README.txt")
    assert sorted(p.name for p in kth_root.iterdir()) == [
        "README.txt",
        "boxing",
        "person02_running_d1_uncomp",
        "person18_jogging_d2_uncomp.avi",
    ]  # nothing written next to the data
