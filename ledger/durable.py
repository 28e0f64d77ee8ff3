"""Crash-safe file writes: the one implementation every writer in the project uses.

A file that must survive a crash or a power loss whole, or not at all, is written in
this order (POSIX gives no other guarantee):

1. ``open(tmp, O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC|O_NOFOLLOW, mode)``: a temporary
   file beside the target, in the same directory (so the rename cannot cross file
   systems), with a random name (so racing writers never share one);
2. ``write`` everything, then ``fsync(tmp)``: the data is on disk before any name
   points at it;
3. ``rename(tmp, target)`` (:func:`write_atomic`, replacing) or ``link(tmp, target)``
   (:func:`write_new`, never replacing: of two racing writers exactly one wins, and
   the loser gets :class:`FileExistsError`), then ``unlink(tmp)``;
4. ``fsync(directory)``: the new name itself is on disk. Without this step a rename
   that was answered can roll back after a power loss, and the old file (or none)
   reappears.

What a crash leaves at each step: before 3, the target is untouched and a stray
``.<name>.<random>.tmp`` may remain (harmless; readers never look at it); between 3
and 4, the target is the new file or, after a power loss, the old one, never a mix.

Directories that must exist durably are made with :func:`make_dirs` (each created
level is fsynced in its parent), and a set of files written without their own
directory sync (``sync_parent=False``: a staging area, a tile tree, a site of many
pages) is made durable by one :func:`sync_dirs` over their directories afterwards:
step 4 once per directory rather than once per file. Until then a power loss may
roll back any of those names (each file is still whole: steps 1-3 are done).
:func:`remove_temporaries` removes the strays a crash before step 3 left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "is_temporary",
    "make_dirs",
    "remove_temporaries",
    "sync_dir",
    "sync_dirs",
    "write_atomic",
    "write_new",
]

StrPath = str | os.PathLike[str]
#: What to write: bytes, or a function that writes to the open binary file.
Content = bytes | Callable[[BinaryIO], None]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
#: link() is not supported here (some network or FUSE file systems).
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}


def sync_dir(directory: StrPath) -> None:
    """fsync ``directory``, so that the names created or renamed in it are durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dirs(directories: Iterable[StrPath]) -> None:
    """fsync each distinct directory once."""
    seen: set[str] = set()
    for d in directories:
        key = os.path.abspath(os.fspath(d))
        if key not in seen:
            seen.add(key)
            sync_dir(key)


def make_dirs(directory: StrPath, mode: int = 0o755) -> None:
    """``mkdir -p`` that fsyncs the parent of every level it creates."""
    path = Path(os.path.abspath(os.fspath(directory)))
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(level, mode)
        sync_dir(level.parent)


#: The name of a temporary file of :func:`_write_temp`: ``.<name>.<16 hex digits>.tmp``.
_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")


def is_temporary(name: str) -> bool:
    """Whether ``name`` (a file name, no directory) is that of a temporary file of this module."""
    return _TEMPORARY.fullmatch(name) is not None


def remove_temporaries(directory: StrPath) -> list[str]:
    """Remove the temporary files that crashed writes left in ``directory`` (not in its
    subdirectories); return their names, sorted. A missing directory has none."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        path = os.path.join(directory, name)
        if is_temporary(name) and os.path.isfile(path) and not os.path.islink(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            removed.append(name)
    return removed


def _write_temp(target: Path, content: Content, mode: int) -> Path:
    """Steps 1 and 2: a fully written, fsynced temporary file beside ``target``."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, _FLAGS, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits; ``mode`` exactly
        with os.fdopen(fd, "wb") as f:
            if isinstance(content, bytes | bytearray | memoryview):
                f.write(content)
            else:
                content(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(
    path: StrPath, content: Content, mode: int = 0o644, *, sync_parent: bool = True
) -> None:
    """Replace ``path`` by ``content`` durably: readers see the old file or the new one.

    With ``sync_parent=False`` step 4 is left to the caller (:func:`sync_dirs`).
    """
    target = Path(os.path.abspath(os.fspath(path)))
    tmp = _write_temp(target, content, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_parent:
        sync_dir(target.parent)


def write_new(
    path: StrPath, content: Content, mode: int = 0o644, *, sync_parent: bool = True
) -> None:
    """Create ``path`` holding ``content`` durably; never replace an existing file.

    Raises :class:`FileExistsError` if ``path`` exists (also when another writer
    creates it first). Where the file system has no hard links, it falls back to an
    exclusive create of ``path`` itself, which is still never a replacement but can
    leave a partial file after a crash. With ``sync_parent=False`` step 4 is left to
    the caller (:func:`sync_dirs`).
    """
    target = Path(os.path.abspath(os.fspath(path)))
    if os.path.lexists(target):  # the early, cheap check; link() is the real guard
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    tmp = _write_temp(target, content, mode)
    try:
        os.link(tmp, target)
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
        fd = os.open(target, _FLAGS, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(tmp.read_bytes())
            f.flush()
            os.fsync(f.fileno())
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if sync_parent:
        sync_dir(target.parent)
