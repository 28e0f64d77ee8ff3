"""Sequencing in a child process (api.sequencing.child): same answers as in a thread,
and a child that dies or is interrupted loses nothing and stops nothing for good."""

from __future__ import annotations

import base64
import os
import signal
import time
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import pytest
from conftest import ORIGIN, Maker
from logfactory import private_key
from starlette.responses import JSONResponse
from test_api_support import Api, check_receipt, now_maker, running_api

from api import answers
from api.checkpoints import CheckpointPublisher
from api.published import PublishedCheckpoint
from api.sequencing.batch import Batch, append_checked
from api.sequencing.child import ChildAppender, _parsed, _serve, _take
from api.storage.base import Appended, Rejected, StorageUnavailableError
from api.storage.sql import SqlStorage
from keys.signer import NoteSigner
from ledger.core.checkpoint import parse_checkpoint_text
from ledger.core.note import parse_note, parse_vkey
from ledger.core.receipt import Receipt, parse_receipt, verify_receipt
from ledger.core.records import RecordSignature, SignedRecord


def _forged(record: SignedRecord) -> SignedRecord:
    """The record with its first signature bit-flipped (its signers stay right)."""
    sig = record.signatures[0]
    bad = bytearray(sig.signature)
    bad[5] ^= 0x10
    return SignedRecord(
        record.body, record.body_bytes, (RecordSignature(sig.public_key, bytes(bad)),)
    )


def _scenario(api: Api) -> list[Any]:
    """Registrations, a statement, endorsements (one forged), in both submission forms."""
    m = now_maker()
    seen: list[Any] = []
    reg_a, reg_b, reg_c = m.register("a"), m.register("b"), m.register("c")
    for rec in (reg_a, reg_b):
        doc = api.submit(rec)
        assert check_receipt(api, doc["receipt"], _entry(doc), doc["index"]) >= doc["index"] + 1
        seen.append((201, doc["index"]))
    statement = m.statement("a")
    doc = api.submit(statement)
    seen.append((201, doc["index"]))
    r = api.post("/api/v1/records", content=_forged(reg_c).encode())
    seen.append((r.status_code, r.json()["code"]))
    seen.append((200, api.submit(reg_a, 200)["index"]))  # identical: the existing entry
    sid = statement.record_id
    batch = api.batch(
        [m.endorse("a", sid), _forged(m.endorse("b", sid)), m.endorse("a", sid), reg_c],
        receipts="true",
    )
    for item in batch["results"]:
        seen.append((item["status"], item.get("code"), item.get("index")))
    endorse_b = m.endorse("b", sid)
    doc = api.submit(endorse_b)
    assert check_receipt(api, doc["receipt"], _entry(doc), doc["index"]) == doc["index"] + 1
    seen.append((201, doc["index"]))
    seen.append(api.get("/api/v1/log").json()["size"])
    return seen


def _entry(doc: dict[str, Any]) -> bytes:
    return base64.b64decode(doc["entry"])


@pytest.mark.parametrize("in_process", [True, False], ids=["child-process", "thread"])
def test_both_sequencers_give_the_same_answers(
    database_url: str, tmp_path: Path, in_process: bool
) -> None:
    with running_api(database_url, tmp_path / "data", sequencer_process=in_process) as api:
        assert isinstance(api.service.appender, ChildAppender) is in_process
        seen = _scenario(api)
    again = seen[7]
    assert seen[:7] == [
        (201, 0),
        (201, 1),
        (201, 2),
        (422, "bad_signature"),  # checked by the child, or by the route
        (200, 0),
        (201, None, 3),
        (422, "bad_signature", None),
    ]
    assert again in [(200, None, 3), (409, "already_endorsed", None)]
    assert seen[8:] == [(201, None, 4), (201, 5), 6]


def test_the_child_records_the_published_checkpoint(database_url: str, tmp_path: Path) -> None:
    with running_api(database_url, tmp_path / "data") as api:
        assert api.service.appender is not None
        doc = api.submit(now_maker().register("a"))
        published = PublishedCheckpoint(api.service.settings.published_checkpoint_path).read()
        assert published is not None
        assert published == doc["checkpoint"].encode()
        cp = parse_checkpoint_text(parse_note(published).text)
        assert (cp.origin, cp.size) == (ORIGIN, doc["index"] + 1)


def _appender(api: Api) -> ChildAppender:
    appender = api.service.appender
    assert isinstance(appender, ChildAppender)
    return appender


def test_a_child_that_dies_mid_batch_fails_that_batch_only(
    database_url: str, tmp_path: Path
) -> None:
    with running_api(database_url, tmp_path / "data") as api:
        m = now_maker()
        reg_a = m.register("a")
        first = api.submit(reg_a)
        appender = _appender(api)
        child = appender._current()
        pid = child.process.pid
        child.conn.send("not a batch")  # the child cannot unpack it and dies
        with pytest.raises(StorageUnavailableError, match="submit again"):
            appender.submit(Batch([m.register("b")], None)).result(30)
        # The next batch starts a new child; nothing was lost, nothing doubled.
        doc = api.submit(m.register("b"))
        assert doc["index"] == first["index"] + 1
        assert appender.process is not None and appender.process.pid != pid
        assert api.submit(reg_a, 200)["index"] == first["index"]


def test_a_killed_child_is_replaced(database_url: str, tmp_path: Path) -> None:
    with running_api(database_url, tmp_path / "data") as api:
        m = now_maker()
        api.submit(m.register("a"))
        process = _appender(api).process
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        doc = api.submit(m.register("b"))
        assert doc["index"] == 1
        assert check_receipt(api, doc["receipt"], _entry(doc), 1) == 2


def test_the_child_ignores_ctrl_c(database_url: str, tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: the child must finish the queue with
    its parent, not die mid-batch."""
    with running_api(database_url, tmp_path / "data") as api:
        process = _appender(api).process
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGINT)
        doc = api.submit(now_maker().register("a"))
        assert process.is_alive()
        assert doc["index"] == 0


def test_results_carry_their_proof_not_the_batch_hashes(database_url: str, tmp_path: Path) -> None:
    with running_api(database_url, tmp_path / "data") as api:
        m = now_maker()
        records = [m.register(x) for x in "abcde"]
        results = _appender(api).submit(Batch([*records, records[0]], None)).result(30)
        assert [type(r) for r in results] == [Appended] * 6
        for r in results[:5]:
            assert isinstance(r, Appended) and r.proof is not None and r.entry is not None
            assert r.published.size == 5
        dup = results[5]
        assert isinstance(dup, Appended) and dup.existing and dup.index == 0
        forged = _appender(api).submit(Batch([_forged(m.register("f"))], None)).result(30)
        assert isinstance(forged[0], Rejected) and forged[0].code == "bad_signature"


def test_a_record_the_child_cannot_parse_is_refused_alone(
    database_url: str, tmp_path: Path
) -> None:
    with running_api(database_url, tmp_path / "data") as api:
        good = now_maker().register("a")
        results = append_checked(
            api.service.storage,
            api.service.publisher,
            [_parsed(b"not a record\n"), _parsed(good.encode())],
            None,
        )
        bad, ok = results
        assert isinstance(bad, Rejected) and bad.code == "malformed"
        assert isinstance(ok, Appended) and ok.index == 0 and ok.proof is not None
        assert ok.published == api.service.storage.head() and ok.published.size == 1


def test_a_new_entrys_answer_is_built_from_its_result(database_url: str, tmp_path: Path) -> None:
    """The child's results hold a new entry's bytes and proof: the route builds the
    answer from them (api.answers) as FastAPI renders it, 201 with its Location."""
    with running_api(database_url, tmp_path / "data") as api:
        m = now_maker()
        records = [m.register(x) for x in "abc"]
        results = _appender(api).submit(Batch([*records, records[0]], None)).result(30)
        for record, r in zip(records, results, strict=False):
            assert isinstance(r, Appended) and r.proof is not None and r.entry is not None
            receipt = Receipt(r.index, r.proof, r.published.checkpoint).encode()
            expected = JSONResponse(
                {
                    "index": r.index,
                    "leaf_hash": r.leaf_hash.hex(),
                    "record_id": record.record_id.hex(),
                    "existing": False,
                    "entry": base64.b64encode(r.entry).decode(),
                    "receipt": receipt.decode(),
                    "checkpoint": r.published.checkpoint.decode(),
                }
            ).body
            doc = answers.accepted_document(None, record.record_id, r)
            assert answers.render_json(doc) == expected
        dup = results[3]
        assert isinstance(dup, Appended) and dup.existing and dup.entry is None
        # Over HTTP: 201, and the entry's Location.
        record = m.register("d")
        resp = api.post("/api/v1/records", content=record.encode())
        assert resp.status_code == 201
        assert resp.headers["content-type"] == "application/json"
        doc = resp.json()
        assert resp.headers["location"] == f"/api/v1/entries/{doc['index']}"
        assert doc["record_id"] == record.record_id.hex() and doc["existing"] is False
        assert check_receipt(api, doc["receipt"], _entry(doc), doc["index"]) == doc["index"] + 1
        # An identical resubmission reads what it needs: 200, the same entry.
        again = api.submit(record, 200)
        assert again["existing"] is True
        assert {k: again[k] for k in ("index", "leaf_hash", "record_id", "entry")} == {
            k: doc[k] for k in ("index", "leaf_hash", "record_id", "entry")
        }


def test_bulk_imports_answer_with_receipts(database_url: str, tmp_path: Path) -> None:
    with running_api(database_url, tmp_path / "data") as api:
        m = now_maker()
        batch = api.batch([m.register("e"), m.register("f")], receipts="true")
        for item in batch["results"]:
            assert item["status"] == 201
            parsed = parse_receipt(item["receipt"].encode())
            leaf = bytes.fromhex(item["leaf_hash"])
            cp = verify_receipt(parsed, leaf, [parse_vkey(api.vkey)], ORIGIN)
            assert parsed.index == item["index"] and cp.size > item["index"]


def test_batches_sent_ahead_are_answered_in_order(database_url: str, tmp_path: Path) -> None:
    """Several batches sent before any answer: each future gets its own outcomes, in
    the order sent, whichever is waited for first."""
    with running_api(database_url, tmp_path / "data") as api:
        appender = _appender(api)
        m = now_maker()
        batches = [[m.register(f"{i}{x}") for x in "ab"] for i in range(4)]
        futures = [appender.submit(Batch(b, None)) for b in batches]
        order = [2, 0, 3, 1]
        got = {t: futures[t].result(30) for t in order}
        indexes = [r.index for t in range(4) for r in got[t] if isinstance(r, Appended)]
        assert indexes == list(range(8))


def test_the_child_sequences_waiting_batches_together(tmp_path: Path) -> None:
    """Batches already waiting on the pipe make one transaction (one checkpoint), and
    each is answered with its own results; a different max_age_s is not merged."""
    storage = SqlStorage(f"sqlite:///{tmp_path / 'l.db'}", origin=ORIGIN)
    signer = NoteSigner(private_key("log"), ORIGIN)
    storage.init_log()
    publisher = CheckpointPublisher(storage, signer, None)
    m = now_maker()
    ours, theirs = Pipe()
    msgs = [([m.register(f"{i}{x}").encode() for x in "abc"], None) for i in range(3)]
    msgs.append(([m.register("z").encode()], 3600))
    for msg in msgs:
        ours.send(msg)
    taken = _take(theirs)
    assert len(taken) == 4  # the last is taken, then sequenced apart
    _serve(theirs, taken, storage, publisher)
    got = [ours.recv() for _ in msgs]
    assert [a[0] for a in got] == ["ok"] * 4
    assert [[r.index for r in a[1]] for a in got] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert {r.published.size for a in got[:3] for r in a[1]} == {9}
    assert got[3][1][0].published.size == 10
    assert [c.size for c in storage.checkpoints()] == [9, 10]
    ours.send("not a batch")
    with pytest.raises(RuntimeError, match="not a batch message"):
        _take(theirs)
    ours.send(None)
    assert _take(theirs) == [None]
    storage.close()


def test_a_child_that_dies_fails_every_batch_it_had(database_url: str, tmp_path: Path) -> None:
    """Two batches sent to a child that dies before answering: both fail (whether
    they committed is unknown to their submitters), and the next batch starts a new
    child that continues the same log."""
    with running_api(database_url, tmp_path / "data") as api:
        appender = _appender(api)
        m = now_maker()
        api.submit(m.register("a"))
        process = appender._current().process
        assert process.pid is not None
        os.kill(process.pid, signal.SIGSTOP)  # alive, so both go to this child
        try:
            futures = [appender.submit(Batch([m.register(x)], None)) for x in "bc"]
        finally:
            os.kill(process.pid, signal.SIGKILL)
        for f in futures:
            with pytest.raises(StorageUnavailableError, match="submit again"):
                f.result(30)
        doc = api.submit(m.register("d"))
        assert doc["index"] == 1
        assert appender.process is not None and appender.process.pid != process.pid
        assert check_receipt(api, doc["receipt"], _entry(doc), 1) == 2


def test_large_batches_sent_ahead_do_not_block_the_answers(tmp_path: Path) -> None:
    """Batches larger than the pipe's buffer, sent before any answer: a send blocked
    on a full pipe must not keep the reader from taking the child's answers (else
    the child, blocked writing them, never reads the rest: a deadlock)."""
    with running_api(f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "data") as api:
        appender = _appender(api)
        m = Maker(start=int(time.time()) - 86400)  # 6,000 records, a second apart
        batches = [[m.register(f"{i}-{j}") for j in range(1500)] for i in range(4)]
        futures = [appender.submit(Batch(b, None)) for b in batches]
        outcomes = [f.result(300) for f in futures]
        bad = [o for batch in outcomes for o in batch if not isinstance(o, Appended)]
        assert bad == []
        assert [o.index for batch in outcomes for o in batch] == list(range(6000))  # type: ignore[union-attr]
