"""``ledger mirror``: incremental, verified, crash-safe copies of a log (issue 6).

Logs come from ``tests/logfactory.py`` written as static directories (a source
like any other: the mirror reads a directory, a mirror URL or a server the same
way), and from a real ``ledger serve`` for the end-to-end test. Every mirror is
checked with ``ledger-verify`` itself.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli.demo import free_port, local_server
from cli.main import cli as ledger_cli
from ledger.core import tiles
from ledger.core.checkpoint import Checkpoint
from ledger.core.entry import parse_entry
from ledger.core.fork import check_evidence
from ledger.core.note import sign_note
from ledger.mirror.directory import STATE_DIR, MirrorError
from ledger.mirror.layout import LayoutWriter, layout_paths, new_paths, tree_files
from ledger.mirror.sync import Mirror
from ledger.verify import cli as verify_cli
from ledger.verify.source import DirectorySource, open_source
from ledger.verify.statefile import load_state
from ledger.verify.trust import Trust
from tests.logfactory import LogFactory, LogKey

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 60.0  # a deadline for things to happen, never an assertion on speed


def trust_of(f: LogFactory) -> Trust:
    return Trust.from_vkeys([f.log_key.vkey])


def ledger(*args: object) -> tuple[int, str, str]:
    """Run ``ledger`` in-process; return (exit code, stdout, stderr)."""
    result = CliRunner().invoke(ledger_cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def verify_dir(f: LogFactory, directory: Path | str) -> int:
    return verify_cli.main(["log", str(directory), "--log-key", f.log_key.vkey, "-q"])


def files(directory: Path) -> dict[str, bytes]:
    return dict(tree_files(directory))


def snapshot(directory: Path) -> dict[str, bytes]:
    """Everything in a mirror directory, its state included."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
        and "staging" not in p.parts
        and p.name != "lock"
        and not p.name.startswith("fork-evidence")
    }


class Counting:
    """A source that counts what is read through it."""

    def __init__(self, directory: Path) -> None:
        self.inner = DirectorySource(directory)
        self.paths: list[str] = []

    @property
    def location(self) -> str:
        return self.inner.location

    def fetch(self, path: str) -> bytes:
        self.paths.append(path)
        return self.inner.fetch(path)


# --- incremental --------------------------------------------------------------------------


def test_new_paths_are_what_a_tree_gains() -> None:
    for old, new in [(0, 1), (1, 256), (255, 257), (300, 1300), (256, 65_537), (70_000, 70_000)]:
        gained = set(new_paths(old, new))
        assert gained == set(layout_paths(new)) - set(layout_paths(old))
    assert layout_paths(0) == []


def test_each_sync_fetches_only_the_new_files(tmp_path: Path) -> None:
    f = LogFactory()
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    with Mirror(mirror, trust_of(f)) as m:
        old = 0
        for size in (5, 300, 1300, 1310, 1536, 1536):
            f.grow(size - f.size)
            f.write(src)
            on_disk = set(files(mirror))
            source = Counting(src)
            result = m.sync(source)
            assert (result.previous_size, result.size) == (old, size)
            fetched = set(source.paths)
            # Each file once, and no full tile or bundle the mirror already has.
            assert len(fetched) == len(source.paths)
            assert not {p for p in fetched if ".p/" not in p and p != "checkpoint"} & on_disk
            # Exactly the files the tree gained, plus the partial tiles of the new
            # tree that the consistency proof must read from the source (to see a
            # fork), which are unchanged where a level did not grow.
            expected = {"checkpoint", *new_paths(old, size)}
            if 0 < old < size:
                expected |= {t.path for t in tiles.tiles_for_size(size) if t.is_partial}
            assert fetched == expected, (old, size)
            assert sorted(result.fetched) == sorted(source.paths)
            # What it published is the same set, checkpoint last.
            if old < size:
                assert result.written == [*new_paths(old, size), "checkpoint"]
            else:
                assert result.written == []  # nothing new: nothing written
            assert verify_dir(f, mirror) == 0
            old = size
    # Partial files that full ones replaced are gone; those still partial are kept.
    assert not (mirror / "tile/entries/001.p").exists()
    assert (mirror / "tile/1/000.p/1").exists() and (mirror / "tile/1/000.p/6").exists()
    assert set(files(mirror)) >= {"checkpoint", *layout_paths(1536)}


def test_the_cli_mirrors_incrementally_and_builds_the_site(tmp_path: Path) -> None:
    f = LogFactory().grow(700)
    src, mirror = f.write(tmp_path / "src"), tmp_path / "mirror"
    code, out, err = ledger("mirror", src, mirror, "--log-key", f.log_key.vkey, "--jobs", "1")
    assert code == 0, err
    assert "size 700 (+700 entries verified" in out
    assert (mirror / "index.html").is_file()  # the static site (ledger.mirror.site)
    assert files(mirror) == files(src)
    f.grow(10)
    f.write(src)
    code, out, _ = ledger("mirror", src, mirror, "--log-key", f.log_key.vkey, "--no-site")
    # checkpoint, tile/entries/002.p/198, tile/0/002.p/198, and tile/1/000.p/2 (unchanged,
    # read for the consistency proof); published: the first three.
    assert code == 0 and "size 710 (+10 entries verified, 4 files fetched, 3 published" in out
    code, out, _ = ledger("mirror", src, mirror, "--log-key", f.log_key.vkey, "--no-site")
    assert code == 0 and "up to date at size 710" in out
    # The site catches up from the state (the 10 entries its last build did not see),
    # to the pages a new mirror of the whole log gets.
    f.grow(300)
    f.write(src)
    code, out, err = ledger("mirror", src, mirror, "--log-key", f.log_key.vkey)
    assert code == 0 and "size 1010 (+300 entries verified" in out, err
    fresh = tmp_path / "fresh"
    assert ledger("mirror", src, fresh, "--log-key", f.log_key.vkey)[0] == 0
    assert site_files(mirror) == site_files(fresh)
    assert not (mirror / ".site-cache.json").exists()


def site_files(directory: Path) -> dict[str, bytes]:
    """The static site's pages, the stylesheet, and what it keeps beside the state."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and (p.suffix in (".html", ".css") or p.name == "site-endorsements")
    }


def test_a_new_signature_of_the_same_tree_is_published(tmp_path: Path) -> None:
    f = LogFactory().grow(40)
    src, mirror = f.write(tmp_path / "src"), tmp_path / "mirror"
    with Mirror(mirror, trust_of(f)) as m:
        m.sync(DirectorySource(src))
        # The same tree with a second signature, by a key the mirror does not know.
        text = Checkpoint(f.origin, f.size, f.root()).to_text()
        resigned = sign_note(text, [f.log_key.signer, LogKey.for_origin("other.example/w").signer])
        (src / "checkpoint").write_bytes(resigned)
        result = m.sync(Counting(src))
        assert result.fetched == ["checkpoint"] and result.written == ["checkpoint"]
    assert (mirror / "checkpoint").read_bytes() == resigned
    assert load_state(mirror / STATE_DIR / "state.json").checkpoint == resigned  # type: ignore[union-attr]


# --- forks, stale sources, invalid logs --------------------------------------------------


def fork_of(f: LogFactory, keep: int) -> LogFactory:
    """A log signed by ``f``'s key whose first ``keep`` entries are ``f``'s, then differ."""
    g = LogFactory(log_key=f.log_key, seed="fork")
    for data in f.entries[:keep]:
        g.append_entry_bytes(data)
    g.time_ms = parse_entry(f.entries[keep - 1]).time_ms  # new signatories only
    g.grow(40)
    return g


@pytest.mark.parametrize(("keep", "fork_size"), [(299, 340), (100, 300), (250, 256)])
def test_a_fork_is_refused_with_evidence(tmp_path: Path, keep: int, fork_size: int) -> None:
    f = LogFactory().grow(300)
    src, mirror = f.write(tmp_path / "src"), tmp_path / "mirror"
    assert ledger("mirror", src, mirror, "--log-key", f.log_key.vkey, "--no-site")[0] == 0
    before = snapshot(mirror)
    g = fork_of(f, keep)
    if g.size < fork_size:
        g.grow(fork_size - g.size)
    forked = g.write(tmp_path / "forked", fork_size)
    code, _, err = ledger("mirror", forked, mirror, "--log-key", f.log_key.vkey, "--no-site")
    assert code == verify_cli.EXIT_FORK == 3, err
    assert "FORK" in err and "not changed" in err
    assert snapshot(mirror) == before  # old state and files kept
    (evidence,) = (mirror / STATE_DIR).glob("fork-evidence-*.json")
    a, b = check_evidence(evidence.read_bytes(), trust_of(f))
    assert {a.size, b.size} == {300, fork_size}
    assert verify_cli.main(["evidence", str(evidence), "--log-key", f.log_key.vkey]) == 3
    # The right log still syncs.
    f.grow(5)
    f.write(src)
    assert ledger("mirror", src, mirror, "--log-key", f.log_key.vkey, "--no-site")[0] == 0


def test_a_source_behind_the_mirror_is_not_a_fork(tmp_path: Path) -> None:
    f = LogFactory().grow(600)
    old = f.write(tmp_path / "old", 300)
    src, mirror = f.write(tmp_path / "src"), tmp_path / "mirror"
    assert ledger("mirror", src, mirror, "--log-key", f.log_key.vkey, "--no-site")[0] == 0
    before = snapshot(mirror)
    code, out, _ = ledger("mirror", old, mirror, "--log-key", f.log_key.vkey, "--no-site")
    assert code == 0 and "behind" in out
    assert snapshot(mirror) == before
    # Smaller and inconsistent: a fork, proven from the mirror's own tree.
    g = fork_of(f, 100)
    forked = g.write(tmp_path / "forked", 120)
    code, _, err = ledger("mirror", forked, mirror, "--log-key", f.log_key.vkey, "--no-site")
    assert code == 3, err
    (evidence,) = (mirror / STATE_DIR).glob("fork-evidence-*.json")
    assert {cp.size for cp in check_evidence(evidence.read_bytes(), trust_of(f))} == {120, 600}
    assert snapshot(mirror) == before


def test_an_invalid_source_publishes_nothing(tmp_path: Path) -> None:
    f = LogFactory().grow(300)
    src, mirror = f.write(tmp_path / "src"), tmp_path / "mirror"
    assert ledger("mirror", src, mirror, "--log-key", f.log_key.vkey, "--no-site")[0] == 0
    before = snapshot(mirror)
    f.grow(300)
    f.write(src)
    bundle = src / "tile/entries/001"
    data = bytearray(bundle.read_bytes())
    data[100] ^= 1
    bundle.write_bytes(bytes(data))
    code, _, err = ledger("mirror", src, mirror, "--log-key", f.log_key.vkey, "--no-site")
    assert code == verify_cli.EXIT_INVALID == 1, err
    assert "INVALID" in err
    assert snapshot(mirror) == before
    # Signed by another key: refused too.
    other = LogFactory(seed="x", log_key=None)
    code, _, err = ledger("mirror", src, mirror, "--log-key", other.log_key.vkey, "--no-site")
    assert code != 0 and snapshot(mirror) == before


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    f = LogFactory().grow(3)
    src, mirror = f.write(tmp_path / "src"), tmp_path / "mirror"
    vkey = f.log_key.vkey
    assert ledger("mirror", src, mirror)[0] == 2  # no key
    (tmp_path / "p").write_text(f"log {vkey}\nquorum none\n")
    assert ledger("mirror", src, mirror, "--log-key", vkey, "--policy", tmp_path / "p")[0] == 2
    assert ledger("mirror", src, mirror, "--log-key", "nonsense+1+2")[0] == 2
    assert ledger("mirror", src, src, "--log-key", vkey)[0] == 2
    code, _, err = ledger("mirror", "http://127.0.0.1:9/", mirror, "--log-key", vkey,
                          "--timeout", "1")  # fmt: skip
    assert code == 2 and "I/O ERROR" in err
    assert ledger("mirror", src, mirror, "--policy", tmp_path / "p", "--no-site")[0] == 0
    # Another log's mirror directory, and a directory another mirror holds.
    g = LogFactory(origin="other.example/log").grow(3)
    code, _, err = ledger("mirror", g.write(tmp_path / "g"), mirror, "--log-key", g.log_key.vkey)
    assert code == 2 and "another log" in err
    with Mirror(mirror, trust_of(f)), pytest.raises(MirrorError, match="another"):
        Mirror(mirror, trust_of(f)).open()


# --- crashes -------------------------------------------------------------------------------


class CrashError(Exception):
    pass


def test_a_crash_at_every_write_leaves_a_consistent_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Make the n-th rename of a sync fail, for every n (each fetched file staged, each
    published file, the state and the checkpoint): the mirror still verifies, at the
    old size or the new one, and the next run catches up to the same files as a
    mirror that never crashed."""
    f = LogFactory().grow(800)
    old, src = f.write(tmp_path / "old", 300), f.write(tmp_path / "src")
    reference = tmp_path / "reference"
    with Mirror(reference, trust_of(f)) as m:
        m.sync(DirectorySource(old))
        staged = [p for p in m.sync(DirectorySource(src)).fetched if p != "checkpoint"]
    real_replace = os.replace
    n = 0
    while True:
        mirror = tmp_path / f"m{n}"
        with Mirror(mirror, trust_of(f)) as m:
            m.sync(DirectorySource(old))
        calls = 0

        def crashing_replace(a: str, b: str, *, limit: int = n) -> None:
            nonlocal calls
            calls += 1
            if calls > limit:
                raise CrashError(f"crash at rename {calls}")
            real_replace(a, b)

        monkeypatch.setattr(os, "replace", crashing_replace)
        try:
            with Mirror(mirror, trust_of(f)) as m:
                m.sync(DirectorySource(src))
            crashed = False
        except CrashError:
            crashed = True
        finally:
            monkeypatch.setattr(os, "replace", real_replace)
        assert verify_dir(f, mirror) == 0, n
        assert (mirror / "checkpoint").read_bytes() in (f.checkpoint(300), f.checkpoint(800))
        with Mirror(mirror, trust_of(f)) as m:  # the next run
            m.sync(DirectorySource(src))
        assert files(mirror) == files(reference), n
        if not crashed:
            break
        n += 1
    # Every fetched file staged, every new file renamed into place, the state, and the
    # checkpoint (staged, then renamed).
    assert n == len(staged) + len(new_paths(300, 800)) + 1 + 2


def run_mirror(
    src: Path, mirror: Path, vkey: str, *extra: str, stderr: int = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "cli", "mirror", str(src), str(mirror), "--log-key", vkey,
           "--no-site", "--jobs", "1", *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)


def test_sigkill_at_random_points_never_breaks_the_mirror(tmp_path: Path) -> None:
    rng = random.Random(6)
    f = LogFactory()
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    vkey = f.log_key.vkey
    kills = 0
    for _ in range(8):
        f.grow(rng.choice((1, 40, 300, 900)))
        f.write(src)
        proc = run_mirror(src, mirror, vkey, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        # Whatever was killed where: a servable mirror (or none yet).
        if (mirror / "checkpoint").exists():
            assert verify_dir(f, mirror) == 0
    assert kills > 0
    proc = run_mirror(src, mirror, vkey)
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err
    reference = tmp_path / "reference"
    with Mirror(reference, trust_of(f)) as m:
        m.sync(DirectorySource(src))
    assert verify_dir(f, mirror) == 0
    # Caught up: the same tree (perhaps with partial files of sizes it stopped at).
    got, want = files(mirror), files(reference)
    assert {k: got[k] for k in want} == want
    assert all(".p/" in k for k in set(got) - set(want))


# --- mirrors of mirrors, and serving ----------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[Callable[[Path], str]]:
    procs: list[subprocess.Popen[str]] = []

    def serve(directory: Path) -> str:
        """``python -m http.server`` on a port it picks itself; returns its URL."""
        cmd = [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
               "--directory", str(directory)]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = re.search(r"port (\d+)", line)
        assert port, line
        return f"http://127.0.0.1:{port.group(1)}"

    yield serve
    for proc in procs:
        proc.terminate()
        proc.communicate()  # waits, and closes the pipe


def test_a_mirror_of_a_mirror_is_byte_identical(
    tmp_path: Path, http_server: Callable[[Path], str]
) -> None:
    f = LogFactory()
    src, first, second, third = (tmp_path / n for n in ("src", "a", "b", "c"))
    url = http_server(first)
    vkey = f.log_key.vkey
    for step in (3, 250, 10, 600):
        f.grow(step)
        f.write(src)
        assert ledger("mirror", src, first, "--log-key", vkey, "--no-site")[0] == 0
        assert ledger("mirror", first, second, "--log-key", vkey, "--no-site")[0] == 0
        assert ledger("mirror", url, third, "--log-key", vkey, "--no-site")[0] == 0
        assert files(first) == files(second) == files(third)
    # Served by a plain static web server, the mirror passes ledger-verify.
    assert verify_cli.main(["log", url, "--log-key", vkey, "-q"]) == 0
    assert verify_cli.main(["log", http_server(third), "--log-key", vkey, "-q"]) == 0


def test_watch_follows_the_log_and_stops_cleanly(tmp_path: Path) -> None:
    f = LogFactory().grow(10)
    src, mirror = f.write(tmp_path / "src"), tmp_path / "mirror"
    proc = run_mirror(src, mirror, f.log_key.vkey, "--watch", "0.2")
    try:
        for size in (10, 300):
            if size > f.size:
                f.grow(size - f.size)
                f.write(src)
            deadline = time.monotonic() + WAIT_S
            want = (src / "checkpoint").read_bytes()
            while (
                not (mirror / "checkpoint").exists() or (mirror / "checkpoint").read_bytes() != want
            ):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT_S)
        assert proc.returncode == 130, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert verify_dir(f, mirror) == 0


# --- against the real service ---------------------------------------------------------------


def test_mirror_a_live_server_and_its_publish_dir(tmp_path: Path) -> None:
    f = LogFactory(origin="ledger.test/mirror").grow(600)
    records = [parse_entry(e).record.encode().decode() for e in f.entries]
    data, published, mirror = tmp_path / "data", tmp_path / "published", tmp_path / "mirror"
    data.mkdir()
    args = ["--publish-dir", str(published), "--max-age-s", "none", "--batch-max-ms", "1"]
    with local_server(data, free_port(), origin=f.origin, args=args) as url:
        vkey = (data / "log.vkey").read_text().strip()
        for lo, hi in ((0, 300), (300, 600)):
            r = httpx.post(f"{url}/api/v1/records/batch", json=records[lo:hi], timeout=WAIT_S)
            assert r.status_code == 200 and {x["status"] for x in r.json()["results"]} == {201}
            code, out, err = ledger("mirror", url, mirror, "--log-key", vkey, "--jobs", "1")
            assert code == 0, err
            assert f"size {hi} (+300 entries verified" in out
        # What the service published is what it serves, and what the mirror copied.
        deadline = time.monotonic() + WAIT_S
        while (published / "checkpoint").read_bytes() != httpx.get(f"{url}/checkpoint").content:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Both hold every file of the final tree, byte for byte. Older partial tiles
        # may differ: each keeps those of the sizes it happened to see.
        mirrored, pub = files(mirror), files(published)
        needed = ["checkpoint"] + [
            t.path for t in tiles.tiles_for_size(600) + tiles.bundles_for_size(600)
        ]
        for path in needed:
            assert mirrored[path] == pub[path], path
        for path in mirrored.keys() & pub.keys():
            assert mirrored[path] == pub[path], path
        for path, body in files(published).items():
            assert httpx.get(f"{url}/{path}").content == body, path
        # The service's entries are the factory's records, logged by the service.
        source = open_source(url)
        assert source.fetch("checkpoint") == (mirror / "checkpoint").read_bytes()
    assert (mirror / "index.html").is_file()
    assert verify_cli.main(["log", str(published), "--log-key", vkey, "-q"]) == 0


def test_layout_writer_never_leaves_temporary_files(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    w = LayoutWriter(tmp_path / "out", staging)
    w.put("tile/0/x001/002", b"x" * 32)
    w.publish_checkpoint(b"cp\n")
    assert sorted(p.relative_to(tmp_path / "out").as_posix()
                  for p in (tmp_path / "out").rglob("*") if p.is_file()) == [
        "checkpoint", "tile/0/x001/002"]  # fmt: skip
    assert list(staging.iterdir()) == []
    assert w.written == ["tile/0/x001/002", "checkpoint"]
