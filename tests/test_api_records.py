"""POST /api/v1/records and /api/v1/records/batch through the real application."""

from __future__ import annotations

import base64
import gc
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ORIGIN
from test_api_support import Api, check_receipt, now_maker, problem, running_api

from api.app import freeze_startup_heap
from ledger.core import merkle
from ledger.core.entry import parse_entry
from ledger.core.records import MAX_RECORD_SIZE, Kind, RecordSignature, SignedRecord


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    with running_api(database_url, tmp_path / "data") as a:
        yield a


def entry_bytes(doc: dict[str, object]) -> bytes:
    entry = doc["entry"]
    assert isinstance(entry, str)
    return base64.b64decode(entry)


def test_every_record_type_is_sequenced_with_a_verifying_receipt(api: Api) -> None:
    m = now_maker()
    alice = m.register("alice", kind=Kind.STATE, country="FR", domain="alice.example.org")
    bob = m.register("bob", kind=Kind.COMPANY)
    carol = m.register("carol")
    records = [alice, bob, carol]
    st = m.statement(["alice", "bob"], title="On logs", text="Logs must be verifiable.\n")
    records += [
        st,
        m.endorse("carol", st.record_id, comment="Yes."),
        m.withdraw("carol", st.record_id),
        m.rotate("alice", "alice-2"),
        m.revoke("alice", "alice", signer="alice-2", reason="old key"),
    ]
    types = set()
    for i, record in enumerate(records):
        doc = api.submit(record, 201)
        assert doc["index"] == i
        assert doc["existing"] is False
        assert doc["record_id"] == record.record_id.hex()
        entry = entry_bytes(doc)
        assert doc["leaf_hash"] == merkle.leaf_hash(entry).hex()
        parsed = parse_entry(entry)
        assert parsed.index == i
        assert parsed.record.encode() == record.encode()
        types.add(parsed.record.body.TYPE)
        # The receipt proves the entry against the checkpoint committed with it.
        assert check_receipt(api, doc["receipt"], entry, i) == i + 1
        assert doc["receipt"].endswith(doc["checkpoint"])
    assert types == {"register", "statement", "endorse", "withdraw", "rotate", "revoke"}


def test_identical_resubmission_answers_200_with_the_existing_entry(api: Api) -> None:
    m = now_maker()
    reg = m.register("alice")
    first = api.submit(reg, 201)
    api.submit(m.register("bob"), 201)
    again = api.submit(reg, 200)
    assert again["existing"] is True
    assert (again["index"], again["leaf_hash"]) == (first["index"], first["leaf_hash"])
    # A fresh receipt, against the newer checkpoint, that still verifies.
    assert check_receipt(api, again["receipt"], entry_bytes(again), 0) == 2
    assert api.get("/api/v1/log").json()["size"] == 2


def test_dedup_is_by_record_id_not_signature_bytes(api: Api) -> None:
    m = now_maker()
    reg = m.register("alice")
    api.submit(reg, 201)
    # Same body, same key, but another (bit-flipped, so invalid) signature: refused as
    # a bad signature, never mistaken for the logged record or appended.
    sig = reg.signatures[0]
    bad = bytearray(sig.signature)
    bad[0] ^= 1
    forged = SignedRecord(reg.body, reg.body_bytes, (RecordSignature(sig.public_key, bytes(bad)),))
    r = api.post("/api/v1/records", content=forged.encode())
    problem(r, 422, "bad_signature")
    assert api.get("/api/v1/log").json()["size"] == 1


def test_json_submission(api: Api) -> None:
    m = now_maker()
    r = api.post("/api/v1/records", json={"record": m.register("alice").encode().decode()})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/api/v1/entries/0"


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("already_endorsed", 409, "already_endorsed"),
        ("unknown_statement", 422, "unknown_statement"),
        ("unknown_signatory", 422, "unknown_signatory"),
        ("already_registered", 409, "already_registered"),
        ("not_endorsed", 409, "not_endorsed"),
        ("key_rotated", 422, "key_rotated"),
        ("key_revoked", 422, "key_revoked"),
        ("clock_skew", 422, "clock_skew"),
        ("too_old", 422, "too_old"),
        ("wrong_log", 422, "wrong_log"),
        ("missing_signature", 422, "missing_signature"),
    ],
)
def test_rule_violations_answer_their_code(api: Api, name: str, status: int, code: str) -> None:
    m = now_maker()
    api.submit(m.register("alice"))
    api.submit(m.register("bob"))
    st = m.statement(["alice"])
    api.submit(st)
    now = int(time.time())
    if name == "already_endorsed":
        api.submit(m.endorse("bob", st.record_id))
        record = m.endorse("bob", st.record_id)
    elif name == "unknown_statement":
        record = m.endorse("bob", bytes(32))
    elif name == "unknown_signatory":
        record = m.endorse("nobody", st.record_id)
    elif name == "already_registered":
        record = m.register("alice", name="Alice again")
    elif name == "not_endorsed":
        record = m.withdraw("bob", st.record_id)
    elif name == "key_rotated":
        api.submit(m.rotate("bob", "bob-2"))
        record = m.endorse("bob", st.record_id, signer="bob")
    elif name == "key_revoked":
        api.submit(m.revoke("bob", "bob"))
        record = m.endorse("bob", st.record_id)
    elif name == "clock_skew":
        record = m.endorse("bob", st.record_id, signed_at=now + 3600)
    elif name == "too_old":
        record = m.endorse("bob", st.record_id, signed_at=now - 40 * 86400)
    elif name == "wrong_log":
        record = m.register("dave", log="other.example.org/log")
    else:
        full = m.statement(["alice", "bob"])
        record = SignedRecord(full.body, full.body_bytes, full.signatures[:1])
    size = api.get("/api/v1/log").json()["size"]
    doc = problem(api.post("/api/v1/records", content=record.encode()), status, code)
    assert doc["detail"][0].isupper()
    assert api.get("/api/v1/log").json()["size"] == size  # nothing appended


def test_malformed_records_answer_400(api: Api) -> None:
    m = now_maker()
    good = m.register("alice").encode()
    for body in [
        b"",
        b"hello\n",
        good.replace(b"\n", b"\r\n"),
        good + b"trailing\n",
        good.replace(b"signed_at ", b"signed_at 0"),
        b"\xff\xfe" + good,
    ]:
        doc = problem(api.post("/api/v1/records", content=body), 400, "malformed")
        assert "detail" in doc
    assert api.get("/api/v1/log").json()["size"] == 0


def test_media_types(api: Api) -> None:
    record = now_maker().register("alice").encode()
    r = api.post("/api/v1/records", content=record, headers={"Content-Type": "application/xml"})
    problem(r, 415, "unsupported_media_type")
    r = api.post(
        "/api/v1/records", content=record, headers={"Content-Type": "text/plain; charset=latin-1"}
    )
    problem(r, 415, "unsupported_media_type")
    r = api.post("/api/v1/records/batch", content=record, headers={"Content-Type": "text/plain"})
    problem(r, 415, "unsupported_media_type")


def test_bad_json_answers_4xx(api: Api) -> None:
    headers = {"Content-Type": "application/json"}
    for body, status, code in [
        (b"{", 400, "malformed_json"),
        (b"\xff", 400, "malformed_json"),
        (b"[" * 50_000, 400, "malformed_json"),
        (b'{"record": 5}', 422, "invalid_request"),
        (b'{"record": "x", "more": 1}', 422, "invalid_request"),
        (b'"just a string"', 422, "invalid_request"),
        (b'{"record": "\\ud800\\n"}', 400, "malformed"),
    ]:
        problem(api.post("/api/v1/records", content=body, headers=headers), status, code)
    for body, status, code in [
        (b"{", 400, "malformed_json"),
        (b"{}", 422, "invalid_request"),
        (b"[]", 422, "invalid_request"),
        (b'{"records": 3}', 422, "invalid_request"),
    ]:
        problem(api.post("/api/v1/records/batch", content=body, headers=headers), status, code)


def test_record_too_large_for_an_entry_answers_413(api: Api) -> None:
    r = api.post("/api/v1/records", content=b"x" * (MAX_RECORD_SIZE + 1))
    doc = problem(r, 413, "entry_too_large")
    assert doc["expected"] == MAX_RECORD_SIZE


def test_body_over_the_limit_answers_413(api: Api) -> None:
    limit = api.service.settings.max_body_bytes
    r = api.post("/api/v1/records", content=b"x" * (limit + 1))
    problem(r, 413, "body_too_large")


def test_chunked_body_over_the_limit_answers_413(api: Api) -> None:
    """No Content-Length: the limit counts the bytes as they arrive."""
    limit = api.service.settings.max_body_bytes
    sent = []

    async def chunks() -> object:
        for _ in range(limit // 1000 + 50):
            sent.append(1000)
            yield b"x" * 1000

    r = api.post("/api/v1/records", content=chunks())
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    problem(r, 413, "body_too_large")
    # The application stopped reading once the limit was passed.
    assert sum(sent) <= limit + 2000
    # And the same streamed body within the limit is simply read.
    record = now_maker().register("alice").encode()

    async def small() -> object:
        for i in range(0, len(record), 7):
            yield record[i : i + 7]

    r = api.post("/api/v1/records", content=small())
    assert r.status_code == 201, r.text


def test_batch_answers_one_result_per_record(api: Api) -> None:
    m = now_maker()
    regs = [m.register(f"s{i}") for i in range(20)]
    st = m.statement(["s0", "s1"])
    endorsements = [m.endorse(f"s{i}", st.record_id) for i in range(2, 20)]
    doc = api.batch([*regs, st, *endorsements])
    results = doc["results"]
    assert [r["status"] for r in results] == [201] * 39
    assert [r["index"] for r in results] == list(range(39))
    assert results[20]["record_id"] == st.record_id.hex()
    assert doc["checkpoint"].split("\n")[1] == "39"
    assert all(r["receipt"] is None for r in results)

    # Resubmitting is safe; bad records fail alone, in place; receipts on request.
    bad = m.endorse("nobody", st.record_id)
    texts = [regs[0].encode().decode(), "garbage\n", bad.encode().decode(), 5]
    r = api.post("/api/v1/records/batch", json={"records": texts}, params={"receipts": "true"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["status"], x["code"]) for x in results] == [
        (200, None),
        (400, "malformed"),
        (422, "unknown_signatory"),
        (422, "invalid_request"),
    ]
    entry = base64.b64decode(api.get("/api/v1/entries/0").json()["entry"])
    assert check_receipt(api, results[0]["receipt"], entry, 0) == 39


def test_batch_with_duplicates_inside_appends_once(api: Api) -> None:
    reg = now_maker().register("alice")
    doc = api.batch([reg, reg, reg])
    assert [(r["status"], r["index"]) for r in doc["results"]] == [(201, 0), (200, 0), (200, 0)]
    assert api.get("/api/v1/log").json()["size"] == 1


def test_batch_count_is_bounded(database_url: str, tmp_path: Path) -> None:
    with running_api(database_url, tmp_path / "data", max_batch_records=3) as api:
        m = now_maker()
        texts = [m.register(f"s{i}").encode().decode() for i in range(4)]
        r = api.post("/api/v1/records/batch", json=texts)
        doc = problem(r, 413, "too_many_records")
        assert doc["expected"] == 3
        assert api.get("/api/v1/log").json()["size"] == 0


def test_batch_body_limit_is_its_own(database_url: str, tmp_path: Path) -> None:
    with running_api(
        database_url, tmp_path / "data", max_body_bytes=2048, max_batch_body_bytes=1 << 20
    ) as api:
        m = now_maker()
        records = [m.register(f"s{i}") for i in range(10)]
        assert len(json.dumps([r.encode().decode() for r in records])) > 2048
        assert len(api.batch(records)["results"]) == 10
        big = "x" * 3000
        problem(api.post("/api/v1/records", json={"record": big}), 413, "body_too_large")


def test_origin_in_the_entries_is_the_logs(api: Api) -> None:
    doc = api.submit(now_maker().register("alice"))
    assert parse_entry(entry_bytes(doc)).record.body.log == ORIGIN


def test_a_serving_process_freezes_its_start_up_heap() -> None:
    """What start-up built leaves the collector's generations (api.app.freeze_startup_heap)."""
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
