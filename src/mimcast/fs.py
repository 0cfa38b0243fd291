"""Files written safely: atomic replacement, all-or-nothing groups, removal of owned files only.

Every file mimcast writes goes through here:
- `atomic_write(path, data)`: written under a temporary name in the same folder, fsynced and
  renamed into place, so a kill or a full disk leaves the old file or the new one, never half
  (`atomic_write_with(path, writer)` for a writer of an open file, such as `np.save`).
- `staged(targets)`: a group of outputs written under temporary names and renamed together at
  the end; if anything fails, none of them appears and the temporary files are removed.
- `remove_owned(root, is_owned)`: deletes only the files a predicate recognises as mimcast's,
  never follows or deletes a symbolic link, and removes folders only once they are empty.
A failing disk becomes a `StorageError` whose message names the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from mimcast._version import __version__
from mimcast.errors import StorageError


def _nearly_full(path: Path | str) -> bool:
    """Whether the file system of `path` has under 1 MiB free (a short write's likely cause:
    some writers, Pillow's among them, report it without an errno)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except (OSError, AttributeError):
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


def storage_error(path: Path | str, e: BaseException) -> StorageError:
    """A one-line StorageError for a failed write of `path` (full disk, read-only folder)."""
    reason = getattr(e, "strerror", None) or str(e)
    full = getattr(e, "errno", None) == errno.ENOSPC or "No space left" in str(e)
    if full or (getattr(e, "errno", None) is None and _nearly_full(path)):
        reason = "no space left on device"
    return StorageError(f"cannot write {path}: {reason}")


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """The temporary sibling `path` is staged under: hidden, per process, same suffix (so
    writers that choose a format by extension still do)."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def new_file_mode() -> int:
    """The permissions open() gives a new file under this process's umask (0o666 & ~umask),
    for files a library writes 0600 whatever the umask (safetensors)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_durably(path: Path, data: bytes) -> None:
    """Write `data` to `path` and fsync it (no rename)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path | str, data: str | bytes) -> None:
    """Replace `path` with `data` atomically and durably; StorageError when the disk fails."""
    raw = data.encode() if isinstance(data, str) else data
    atomic_write_with(path, lambda f: f.write(raw))


def atomic_write_with(path: Path | str, write: Callable[[BinaryIO], Any]) -> None:
    """Replace `path` atomically and durably with what `write` writes to the open binary file
    it is given (`np.save`, for arrays too large to hold twice). On any failure the temporary
    file is removed; a failing disk is a StorageError."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # a full disk, an interrupt: no half-written file stays
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise storage_error(path, e) from e
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=1) + "\n")


def write_marker(path: Path, kind: str) -> None:
    """Mark a folder as mimcast's own: a JSON file naming its kind and mimcast's version."""
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(path, {"format": kind, "mimcast": __version__, "created": created})


def has_marker(path: Path, kind: str) -> bool:
    """Whether `path` is a marker of this kind written by write_marker."""
    try:
        marker = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == kind


@contextlib.contextmanager
def staged(targets: Sequence[Path]) -> Iterator[list[Path]]:
    """Yield a temporary path for each target; on success rename all of them into place.

    The caller writes each output to its temporary path: a file, or a folder (a Zarr store).
    An exception (a full disk, a bad value) removes every temporary and leaves the targets as
    they were. A folder target that exists is replaced whole: the caller has checked it is
    one mimcast wrote.
    """
    targets = [Path(t) for t in targets]
    if len({t.resolve() for t in targets}) != len(targets):
        raise ValueError("staged outputs must be distinct files")
    tmps = [temp_name(t) for t in targets]
    try:
        yield tmps
        for tmp in tmps:
            _fsync_tree(tmp)
        for tmp, target in zip(tmps, targets):
            _replace(tmp, target)
    except OSError as e:
        failed = next((t for t, tmp in zip(targets, tmps) if not tmp.exists()), targets[0])
        raise storage_error(getattr(e, "filename", None) or failed, e) from e
    finally:
        for tmp in tmps:
            _remove(tmp)
    for parent in {t.parent for t in targets}:
        fsync_dir(parent)


def _fsync_tree(path: Path) -> None:
    files = [Path(d) / n for d, _, names in os.walk(path) for n in names] if path.is_dir() \
        else [path]  # fmt: skip
    for p in files:
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def _replace(tmp: Path, target: Path) -> None:
    if not (target.is_dir() and not target.is_symlink()):
        os.replace(tmp, target)
        return
    aside = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, aside)  # a folder cannot be renamed over a full one
    os.replace(tmp, target)
    shutil.rmtree(aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_owned(root: Path, is_owned: Callable[[Path], bool]) -> list[Path]:
    """Delete the files under `root` that `is_owned(relative_path)` recognises, bottom-up;
    remove each folder that is empty afterwards. Symbolic links are never followed or deleted.
    Returns what was left (files mimcast did not write), relative to root."""
    kept: list[Path] = []
    if root.is_symlink() or not root.is_dir():
        return [Path(".")] if root.exists() or root.is_symlink() else []
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        here = Path(dirpath)
        for name in filenames:
            p = here / name
            if not p.is_symlink() and is_owned(p.relative_to(root)):
                p.unlink()
            else:
                kept.append(p.relative_to(root))
        links = [here / n for n in dirnames if (here / n).is_symlink()]  # os.walk lists them
        kept += [d.relative_to(root) for d in links]
        for d in (here / n for n in dirnames if here / n not in links):
            _rmdir_if_empty(d)
    _rmdir_if_empty(root)
    return sorted(kept)


def _rmdir_if_empty(d: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: it holds something kept
        d.rmdir()
