"""ledger.durable: the one crash-safe writer (temp file, fsync, rename or link, fsync dir)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

import ledger.durable
from ledger.durable import make_dirs, sync_dirs, write_atomic, write_new


def _strays(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_atomic_replaces_with_the_exact_mode(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    write_atomic(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _strays(tmp_path) == []


def test_write_atomic_takes_a_writer_function(tmp_path: Path) -> None:
    def writer(f: BinaryIO) -> None:
        f.write(b"a")
        f.write(b"b")

    write_atomic(tmp_path / "f", writer)
    assert (tmp_path / "f").read_bytes() == b"ab"


def test_a_failing_writer_leaves_the_old_file_and_no_stray(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def writer(f: BinaryIO) -> None:
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_atomic(target, writer)
    assert target.read_bytes() == b"old"
    assert _strays(tmp_path) == []


def test_the_directory_is_synced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    real_replace, real_sync = os.replace, ledger.durable.sync_dir

    def replace(src: str, dst: str) -> None:
        events.append(("rename", Path(dst).name))
        real_replace(src, dst)

    def sync(d: str | os.PathLike[str]) -> None:
        events.append(("sync", str(d)))
        real_sync(d)

    monkeypatch.setattr(ledger.durable.os, "replace", replace)
    monkeypatch.setattr(ledger.durable, "sync_dir", sync)
    write_atomic(tmp_path / "f", b"x")
    assert events == [("rename", "f"), ("sync", str(tmp_path))]
    events.clear()
    write_new(tmp_path / "g", b"x")
    assert events == [("sync", str(tmp_path))]


def test_write_new_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_new(target, b"first", mode=0o600)
    with pytest.raises(FileExistsError):
        write_new(target, b"second")
    assert target.read_bytes() == b"first"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _strays(tmp_path) == []


def test_write_new_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        write_new(tmp_path / "link", b"x")
    assert not (tmp_path / "elsewhere").exists()


def test_of_racing_writers_exactly_one_wins(tmp_path: Path) -> None:
    target = tmp_path / "f"
    barrier = threading.Barrier(8)
    won: list[int] = []
    lost: list[int] = []

    def race(i: int) -> None:
        barrier.wait()
        try:
            write_new(target, f"writer {i}".encode())
            won.append(i)
        except FileExistsError:
            lost.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 7
    assert target.read_bytes() == f"writer {won[0]}".encode()
    assert _strays(tmp_path) == []


def test_write_new_falls_back_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: str, dst: str) -> None:
        raise OSError(1, "Operation not permitted")  # EPERM, as on some FUSE mounts

    monkeypatch.setattr(ledger.durable.os, "link", no_link)
    write_new(tmp_path / "f", b"content", mode=0o600)
    assert (tmp_path / "f").read_bytes() == b"content"
    assert _strays(tmp_path) == []
    with pytest.raises(FileExistsError):
        write_new(tmp_path / "f", b"again")


def test_make_dirs_creates_every_level_and_sync_dirs_takes_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = ledger.durable.sync_dir
    monkeypatch.setattr(ledger.durable, "sync_dir", lambda d: (synced.append(str(d)), real(d)))
    make_dirs(tmp_path / "a" / "b" / "c")
    assert (tmp_path / "a" / "b" / "c").is_dir()
    assert synced == [str(tmp_path), str(tmp_path / "a"), str(tmp_path / "a" / "b")]
    synced.clear()
    sync_dirs([tmp_path / "a", tmp_path / "a" / ".", tmp_path])
    assert synced == [str(tmp_path / "a"), str(tmp_path)]


KILLED_WRITER = """
import sys
from ledger.durable import write_atomic
path = sys.argv[1]
n = 0
while True:
    n += 1
    write_atomic(path, (b"%08d" % n) * 4096)
"""


def test_a_writer_killed_at_any_moment_leaves_a_whole_file(tmp_path: Path) -> None:
    """SIGKILL a real process that rewrites one file in a loop: the file is always whole."""
    target = tmp_path / "f"
    write_atomic(target, b"%08d" % 0 * 4096)
    root = Path(__file__).resolve().parent.parent
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, str(target)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        try:
            proc.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        data = target.read_bytes()
        assert len(data) == 8 * 4096 and data == data[:8] * 4096
