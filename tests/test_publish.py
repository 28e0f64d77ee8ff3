"""``ledger serve --publish-dir``: the service writes its tlog-tiles layout (api.publish).

The files must be byte-identical with what the API serves at ``/checkpoint`` and
``/tile/...``, written in the crash-safe order (checkpoint last), resumable, and
refused over another log's directory.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ORIGIN
from test_api_support import Api, running_api

from api.publish import PRIVATE_DIR, Publisher, PublishError
from cli.serve_cmd import build_settings
from ledger.core.entry import parse_entry
from ledger.core.records import SignedRecord
from ledger.mirror.layout import layout_paths, new_paths, tree_files
from ledger.verify import cli as verify_cli
from tests.logfactory import LogFactory

WAIT_S = 60.0  # a deadline for the background thread, not a speed assertion


def records(n: int) -> list[SignedRecord]:
    """``n`` valid records of every type, signed for the test origin."""
    f = LogFactory(origin=ORIGIN).grow(n)
    return [parse_entry(e).record for e in f.entries]


def files(directory: Path) -> dict[str, bytes]:
    return dict(tree_files(directory))


def wait_published(api: Api, directory: Path) -> bytes:
    want = api.get("/checkpoint").content
    deadline = time.monotonic() + WAIT_S
    while True:
        path = directory / "checkpoint"
        if path.exists() and path.read_bytes() == want:
            return want
        assert time.monotonic() < deadline, "the checkpoint was not published"
        time.sleep(0.05)


@pytest.fixture
def published(database_url: str, tmp_path: Path) -> Iterator[tuple[Api, Path]]:
    directory = tmp_path / "published"
    with running_api(database_url, tmp_path / "data", publish_dir=directory, max_age_s=None) as api:
        yield api, directory


def test_published_files_are_what_the_api_serves(published: tuple[Api, Path]) -> None:
    api, directory = published
    recs = records(620)
    size = 0
    for step in (3, 300, 1, 316):  # partial, full and wider partial tiles at two levels
        result = api.batch(recs[size : size + step], max_age_s=None)
        assert {r["status"] for r in result["results"]} == {201}
        size += step
        wait_published(api, directory)
        got = files(directory)
        assert set(got) >= {"checkpoint", *layout_paths(size)}
        for path, body in got.items():
            answer = api.get("/" + path)
            assert answer.status_code == 200 and answer.content == body, path
    # Partial files replaced by full ones are gone; nothing else is in the layout.
    assert not (directory / "tile/entries/000.p").exists()
    assert (directory / "tile/1/000.p/1").exists() and (directory / "tile/1/000.p/2").exists()
    assert verify_cli.main(["log", str(directory), "--log-key", api.vkey, "-q"]) == 0
    assert {p.name for p in directory.iterdir()} == {"checkpoint", "tile", PRIVATE_DIR}


class CrashError(Exception):
    pass


def test_a_crash_while_publishing_leaves_a_consistent_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Make the n-th rename fail, for every n: the directory still serves the old
    checkpoint consistently, and the next round catches up."""
    with running_api(database_url, tmp_path / "data", max_age_s=None) as api:
        recs = records(300)
        api.batch(recs[:40], max_age_s=None)
        storage = api.service.storage
        base, reference = tmp_path / "base", tmp_path / "reference"
        assert Publisher(storage, base).publish()
        first = (base / "checkpoint").read_bytes()
        api.batch(recs[40:], max_age_s=None)
        shutil.copytree(base, reference)
        assert Publisher(storage, reference).publish()
        assert not Publisher(storage, reference).publish()  # nothing new
        real_replace = os.replace
        for n in range(len(new_paths(40, 300)) + 1):  # each file, then the checkpoint
            target = tmp_path / f"pub{n}"
            shutil.copytree(base, target)
            calls = 0

            def crashing(a: str, b: str, *, limit: int = n) -> None:
                nonlocal calls
                calls += 1
                if calls > limit:
                    raise CrashError
                real_replace(a, b)

            monkeypatch.setattr(os, "replace", crashing)
            with pytest.raises(CrashError):
                Publisher(storage, target).publish()
            monkeypatch.setattr(os, "replace", real_replace)
            assert (target / "checkpoint").read_bytes() == first
            assert verify_cli.main(["log", str(target), "--log-key", api.vkey, "-q"]) == 0
            assert Publisher(storage, target).publish()
            assert files(target) == files(reference)


def test_another_logs_directory_is_refused(database_url: str, tmp_path: Path) -> None:
    other = LogFactory(origin="other.example/log").grow(3).write(tmp_path / "other")
    before = files(other)
    with running_api(database_url, tmp_path / "data", max_age_s=None) as api:
        api.batch(records(3), max_age_s=None)
        with pytest.raises(PublishError, match=r"other.example/log"):
            Publisher(api.service.storage, other).publish()
        # Same origin, another tree: refused too.
        fake = LogFactory(origin=ORIGIN, seed="fake").grow(2).write(tmp_path / "fake")
        with pytest.raises(PublishError, match="not this log's tree"):
            Publisher(api.service.storage, fake).publish()
    assert files(other) == before


def test_serve_has_a_publish_dir_option(tmp_path: Path) -> None:
    settings = build_settings({"publish_dir": str(tmp_path / "pub"), "data_dir": str(tmp_path)})
    assert settings.publish_dir == tmp_path / "pub"
    assert build_settings({"data_dir": str(tmp_path)}).publish_dir is None
