"""ledger.mirror.layout and .staging: every file is durable before it has its public name.

And the two ledger.durable additions they rely on: ``sync_parent=False`` (the
directories are fsynced once, by the caller) and the clean-up of the temporary
files a crash leaves.
"""

from __future__ import annotations

import doctest
import os
import stat
import threading
from pathlib import Path

import pytest

import ledger.durable
import ledger.mirror.layout as layout
from ledger.durable import is_temporary, remove_temporaries, write_atomic, write_new
from ledger.mirror.layout import LayoutWriter, clean_staging
from ledger.mirror.staging import StagingSource
from ledger.verify.source import DirectorySource


class _Trace:
    """Records fsyncs (of files and of directories) and renames, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.events: list[str] = []
        real_fsync, real_replace, real_sync_dir = os.fsync, os.replace, ledger.durable.sync_dir

        def fsync(fd: int) -> None:
            if stat.S_ISREG(os.fstat(fd).st_mode):  # directories: sync_dir() says it
                self.events.append("fsync " + self._rel(os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def replace(src: str | Path, dst: str | Path) -> None:
            self.events.append(f"rename {self._rel(src)} -> {self._rel(dst)}")
            real_replace(src, dst)

        def sync_dir(d: str | Path) -> None:
            self.events.append("sync-dir " + self._rel(d))
            real_sync_dir(d)

        self.root = root
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(ledger.durable, "sync_dir", sync_dir)

    def _rel(self, p: str | os.PathLike[str]) -> str:
        path = Path(os.path.abspath(p))
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
        return "." if rel == "." else rel


def _shape(event: str) -> str:
    """An event with the random part of temporary names left out."""
    return " ".join("<tmp>" if is_temporary(Path(w).name) else w for w in event.split())


def test_sync_parent_false_leaves_the_directory_to_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _Trace(monkeypatch, tmp_path)
    write_atomic(tmp_path / "a", b"1", sync_parent=False)
    write_new(tmp_path / "b", b"2", sync_parent=False)
    assert not [e for e in t.events if e.startswith("sync-dir")]
    write_atomic(tmp_path / "c", b"3")
    write_new(tmp_path / "d", b"4")
    assert [e for e in t.events if e.startswith("sync-dir")] == ["sync-dir ."] * 2
    assert [p.read_bytes() for p in sorted(tmp_path.iterdir())] == [b"1", b"2", b"3", b"4"]
    assert not [p for p in tmp_path.iterdir() if is_temporary(p.name)]


def test_remove_temporaries_removes_only_what_a_crash_left(tmp_path: Path) -> None:
    strays = [".page.html.0123456789abcdef.tmp", ".checkpoint.fedcba9876543210.tmp"]
    kept = ["page.html", ".page.html.0123.tmp", "x.0123456789abcdef.tmp", ".hidden"]
    for name in strays + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / ".dir.0123456789abcdef.tmp").mkdir()  # not a file: kept
    assert remove_temporaries(tmp_path) == sorted(strays)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*kept, ".dir.0123456789abcdef.tmp"]
    )
    assert remove_temporaries(tmp_path / "missing") == []


def test_a_put_file_is_durable_before_it_is_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, staging = tmp_path / "out", tmp_path / "staging"
    root.mkdir()
    clean_staging(staging)
    w = LayoutWriter(root, staging)
    t = _Trace(monkeypatch, tmp_path)
    w.put("tile/0/000", b"t" * 32)
    w.publish_checkpoint(b"cp\n")
    events = [_shape(e) for e in t.events]
    put_tile = f"staging/put-{threading.get_ident()}-tile+0+000"
    put_cp = f"staging/put-{threading.get_ident()}-checkpoint"
    assert events == [
        "fsync <tmp>",  # the staged file, whole on disk before any name points at it
        f"rename <tmp> -> {put_tile}",
        "sync-dir out",  # new directories are durable as they are made (in their parent)
        "sync-dir out/tile",
        f"rename {put_tile} -> out/tile/0/000",
        "sync-dir out/tile/0",  # publish_checkpoint: the tiles' names first
        "fsync <tmp>",
        f"rename <tmp> -> {put_cp}",
        f"rename {put_cp} -> out/checkpoint",
        "sync-dir out",  # then the checkpoint's
    ]
    assert list(staging.iterdir()) == []


def test_staged_files_are_durable_and_published_by_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "tile/entries").mkdir(parents=True)
    (src / "tile/entries/000.p/3").parent.mkdir()
    (src / "tile/entries/000.p/3").write_bytes(b"\x00\x01a\x00\x01b\x00\x01c")
    (src / "checkpoint").write_bytes(b"cp\n")
    staging = tmp_path / "staging"
    clean_staging(staging)
    staged = StagingSource(DirectorySource(src), staging)
    assert staged.fetch("checkpoint") == b"cp\n"
    (src / "checkpoint").write_bytes(b"moved on\n")
    assert staged.fetch("checkpoint") == b"cp\n"  # pinned: fetched once
    t = _Trace(monkeypatch, tmp_path)
    staged.fetch("tile/entries/000.p/3")
    assert [_shape(e) for e in t.events] == [
        "fsync <tmp>",
        "rename <tmp> -> staging/tile+entries+000.p+3",
    ]
    assert staged.fetched == ["checkpoint", "tile/entries/000.p/3"]
    out = tmp_path / "out"
    out.mkdir()
    w = LayoutWriter(out, staging)
    w.adopt("tile/entries/000.p/3", staged.staged("tile/entries/000.p/3"))
    w.sync()
    assert (out / "tile/entries/000.p/3").read_bytes() == b"\x00\x01a\x00\x01b\x00\x01c"
    assert (out / "tile/entries/000.p/3").stat().st_mode & 0o777 == 0o644


def test_doctests() -> None:
    assert doctest.testmod(layout, raise_on_error=False).attempted >= 3
    assert doctest.testmod(layout, raise_on_error=False).failed == 0
