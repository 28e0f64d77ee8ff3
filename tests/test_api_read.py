"""The read side through the real application: tlog-tiles, entries, proofs, receipts,
the projection, errors, caching, compression, CORS, health and metrics.

One log of 600 entries (every record type, full and partial tiles at two levels) is
built through the batch endpoint once per backend and read by every test here.
"""

from __future__ import annotations

import base64
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import ORIGIN, Maker, pg_base_url, pg_schema
from test_api_support import Api, check_receipt, now_maker, problem, running_api

from api.metrics import KNOWN_METHODS
from api.query import NO_CONTROL_PATTERN
from ledger.core import merkle
from ledger.core.checkpoint import open_checkpoint
from ledger.core.note import parse_vkey
from ledger.core.records import Kind
from ledger.core.tiles import bundles_for_size, decode_bundle, read_tile_data, tiles_for_size

SIZE = 600


@dataclass
class Log:
    api: Api
    maker: Maker
    entries: list[bytes]
    store: merkle.MemoryHashStore
    statement: str
    endorsers: dict[Kind, int]


def build(api: Api) -> Log:
    m = now_maker()
    kinds = [Kind.STATE, Kind.COMPANY, Kind.CIVIL_SOCIETY, Kind.INDIVIDUAL]
    records = []
    for i in range(300):
        records.append(
            m.register(
                f"s{i}",
                name=f"Signatory number {i}" if i else "République française",
                kind=kinds[i % 4],
                country="FR" if i % 3 == 0 else "NL",
                domain=f"s{i}.example.org" if i % 2 == 0 else None,
            )
        )
    st = m.statement(["s0", "s1"], title="On logs", text="Logs must be verifiable.\n\tYes.\n")
    records.append(st)
    other = m.statement(["s2"], title="Another")
    records.append(other)
    for i in range(2, 290):
        records.append(m.endorse(f"s{i}", st.record_id, comment="Agreed." if i == 2 else None))
    records += [m.withdraw("s2", st.record_id), m.rotate("s3", "s3-new")]
    records += [m.revoke("s3", "s3", signer="s3-new"), m.endorse("s4", other.record_id)]
    records += [m.register(f"late{i}") for i in range(SIZE - len(records))]
    assert len(records) == SIZE
    for i in range(0, SIZE, 250):
        results = api.batch(records[i : i + 250])["results"]
        assert {r["status"] for r in results} == {201}, results
    entries = []
    for b in bundles_for_size(SIZE):
        data = api.get("/" + b.path).content
        entries += decode_bundle(data, b.width)
    store = merkle.MemoryHashStore()
    for e in entries:
        store.append(merkle.leaf_hash(e))
    endorsers = {k: 0 for k in Kind}
    for i in range(3, 290):  # s2 withdrew
        endorsers[kinds[i % 4]] += 1
    return Log(api, m, entries, store, st.record_id.hex(), endorsers)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    data_dir = tmp_path_factory.mktemp("data")
    if request.param == "sqlite":
        with running_api(f"sqlite:///{data_dir / 'ledger.db'}", data_dir) as api:
            yield build(api)
        return
    base = pg_base_url()
    if base is None:
        pytest.skip("PostgreSQL tests need LEDGER_TEST_DATABASE_URL")
    with pg_schema(base) as url, running_api(url, data_dir) as api:
        yield build(api)


# --- tlog-tiles ---------------------------------------------------------------------


def test_checkpoint_verifies_and_commits_to_the_entries(log: Log) -> None:
    r = log.api.get("/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=2"
    assert r.headers["access-control-allow-origin"] == "*"
    cp, _ = open_checkpoint(r.content, [parse_vkey(log.api.vkey)], ORIGIN)
    assert (cp.size, cp.root) == (SIZE, log.store.root())


def test_tiles_are_byte_identical_to_the_core(log: Log) -> None:
    tiles = tiles_for_size(SIZE)
    assert {t.level for t in tiles} == {0, 1}
    assert any(not t.is_partial for t in tiles) and any(t.is_partial for t in tiles)
    for tile in tiles:
        r = log.api.get("/" + tile.path)
        assert r.status_code == 200, (tile.path, r.text)
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.content == read_tile_data(tile, log.store), tile.path
        if tile.is_partial:
            assert r.headers["cache-control"] == "public, max-age=60"
        else:
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_bundles(log: Log) -> None:
    for b in bundles_for_size(SIZE):
        r = log.api.get("/" + b.path)
        assert r.headers["content-type"] == "application/octet-stream"
        immutable = r.headers["cache-control"].endswith("immutable")
        assert immutable == (not b.is_partial)
    # A narrower partial bundle of an earlier size is served too.
    r = log.api.get("/tile/entries/002.p/3")
    assert decode_bundle(r.content, 3) == log.entries[512:515]


def test_tiles_beyond_the_tree_answer_404_uncached(log: Log) -> None:
    for path in [
        "tile/0/002",  # the full tile does not exist yet: 600 < 768
        "tile/0/002.p/89",  # one hash too wide
        "tile/1/000",
        "tile/1/000.p/3",
        "tile/2/000.p/1",
        "tile/entries/003.p/1",
        "tile/entries/x001/000",
    ]:
        r = log.api.get("/" + path)
        problem(r, 404, "not_found")
        assert r.headers["cache-control"] == "no-store"


def test_malformed_tile_paths_answer_400(log: Log) -> None:
    for path in [
        "tile/0/1",
        "tile/0/x000/001",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/00/000",
        "tile/64/000",
        "tile/entries/000.p/",
        "tile/0/-01",
        "tile/0/000/",
        "tile/x/000",
    ]:
        problem(log.api.get("/" + path), 400, "malformed")


def test_gzip_when_accepted(log: Log) -> None:
    r = log.api.get("/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == b"".join(len(e).to_bytes(2, "big") + e for e in log.entries[:256])
    r = log.api.get("/tile/entries/000", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in r.headers
    assert len(gzip.compress(r.content)) < len(r.content)
    # Answers to writes are small: never compressed.
    r = log.api.post(
        "/api/v1/records", content=b"x" * 2000 + b"\n", headers={"Accept-Encoding": "gzip"}
    )
    assert r.status_code == 400
    assert "content-encoding" not in r.headers


def test_head_requests(log: Log) -> None:
    for path in ["/checkpoint", "/tile/0/000", "/tile/entries/002.p/88"]:
        r = log.api.request("HEAD", path)
        assert r.status_code == 200, path
        assert r.headers["content-type"] in (
            "text/plain; charset=utf-8",
            "application/octet-stream",
        )


# --- entries, proofs, receipts -----------------------------------------------------------


def test_log_info(log: Log) -> None:
    doc = log.api.get("/api/v1/log").json()
    assert doc["origin"] == ORIGIN
    assert doc["vkey"] == log.api.vkey
    assert doc["size"] == SIZE
    assert doc["root"] == log.store.root().hex()
    open_checkpoint(doc["checkpoint"].encode(), [parse_vkey(doc["vkey"])], ORIGIN)


def test_entry_by_index_and_by_leaf_hash(log: Log) -> None:
    i = 300  # the statement
    r = log.api.get(f"/api/v1/entries/{i}")
    assert r.status_code == 200
    assert r.headers["cache-control"].endswith("immutable")
    doc = r.json()
    assert base64.b64decode(doc["entry"]) == log.entries[i]
    assert doc["leaf_hash"] == merkle.leaf_hash(log.entries[i]).hex()
    assert doc["type"] == "statement"
    assert doc["record_id"] == log.statement
    assert doc["fields"]["title"] == "On logs"
    assert doc["fields"]["text"] == "Logs must be verifiable.\n\tYes.\n"
    assert len(doc["fields"]["authors"]) == 2
    assert len(doc["signatures"]) == 2
    assert doc["prev"] == merkle.leaf_hash(log.entries[i - 1]).hex()
    assert log.api.get(f"/api/v1/entries/by-leaf/{doc['leaf_hash']}").json() == doc
    reg = log.api.get("/api/v1/entries/0").json()
    assert reg["fields"]["key"] == reg["signatures"][0]["public_key"]  # keys as base64


def test_entry_errors(log: Log) -> None:
    problem(log.api.get(f"/api/v1/entries/{SIZE}"), 404, "not_found")
    problem(log.api.get("/api/v1/entries/99999999999999999999999"), 400, "invalid_parameter")
    problem(log.api.get("/api/v1/entries/007"), 400, "invalid_parameter")
    problem(log.api.get("/api/v1/entries/-1"), 400, "invalid_parameter")
    problem(log.api.get("/api/v1/entries/by-leaf/" + "0" * 64), 404, "not_found")
    problem(log.api.get("/api/v1/entries/by-leaf/" + "A" * 64), 400, "invalid_parameter")
    problem(log.api.get("/api/v1/entries/by-leaf/xyz"), 400, "invalid_parameter")


def test_inclusion_proofs_verify(log: Log) -> None:
    for index, size in [(0, 1), (0, SIZE), (255, 256), (256, 257), (599, SIZE), (300, 513)]:
        doc = log.api.get(
            "/api/v1/proofs/inclusion", params={"index": index, "tree_size": size}
        ).json()
        leaf = merkle.leaf_hash(log.entries[index])
        assert doc["leaf_hash"] == leaf.hex()
        root = merkle.tree_hash(size, log.store)
        assert doc["root"] == root.hex()
        proof = [base64.b64decode(h) for h in doc["proof"]]
        merkle.verify_inclusion(leaf, index, size, proof, root)
    leaf = merkle.leaf_hash(log.entries[42])
    doc = log.api.get("/api/v1/proofs/inclusion", params={"leaf_hash": leaf.hex()}).json()
    assert (doc["index"], doc["tree_size"]) == (42, SIZE)


def test_inclusion_proof_errors(log: Log) -> None:
    url = "/api/v1/proofs/inclusion"
    problem(log.api.get(url), 400, "invalid_parameter")
    problem(log.api.get(url, params={"index": 1, "leaf_hash": "00" * 32}), 400, "invalid_parameter")
    problem(log.api.get(url, params={"index": 5, "tree_size": 5}), 400, "invalid_parameter")
    problem(log.api.get(url, params={"index": 0, "tree_size": SIZE + 1}), 400, "invalid_parameter")
    problem(log.api.get(url, params={"index": "x"}), 422, "invalid_request")
    problem(log.api.get(url, params={"index": -1}), 422, "invalid_request")
    problem(log.api.get(url, params={"index": 0, "tree_size": 0}), 422, "invalid_request")
    problem(log.api.get(url, params={"leaf_hash": "11" * 32}), 404, "not_found")


def test_consistency_proofs_verify(log: Log) -> None:
    for old, new in [(1, 2), (3, 7), (256, SIZE), (257, 512), (SIZE, SIZE), (0, 5)]:
        doc = log.api.get(
            "/api/v1/proofs/consistency", params={"old_size": old, "new_size": new}
        ).json()
        old_root = merkle.tree_hash(old, log.store)
        new_root = merkle.tree_hash(new, log.store)
        assert (doc["old_root"], doc["new_root"]) == (old_root.hex(), new_root.hex())
        proof = [base64.b64decode(h) for h in doc["proof"]]
        if old:
            merkle.verify_consistency(old, new, old_root, new_root, proof)
    doc = log.api.get("/api/v1/proofs/consistency", params={"old_size": 10}).json()
    assert doc["new_size"] == SIZE
    url = "/api/v1/proofs/consistency"
    problem(log.api.get(url, params={"old_size": 5, "new_size": 4}), 400, "invalid_parameter")
    problem(log.api.get(url, params={"old_size": SIZE + 1}), 400, "invalid_parameter")
    problem(log.api.get(url), 422, "invalid_request")


def test_receipts_verify_against_the_current_checkpoint(log: Log) -> None:
    for i in [0, 255, 256, 599]:
        r = log.api.get(f"/api/v1/receipts/{i}")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert check_receipt(log.api, r.text, log.entries[i], i) == SIZE
    leaf = merkle.leaf_hash(log.entries[7]).hex()
    r = log.api.get(f"/api/v1/receipts/{leaf}")
    assert check_receipt(log.api, r.text, log.entries[7], 7) == SIZE
    problem(log.api.get(f"/api/v1/receipts/{SIZE}"), 404, "not_found")
    problem(log.api.get("/api/v1/receipts/01"), 400, "invalid_parameter")
    problem(log.api.get("/api/v1/receipts/" + "f" * 64), 404, "not_found")


# --- the projection ---------------------------------------------------------------------


def test_statements_and_tallies(log: Log) -> None:
    doc = log.api.get("/api/v1/statements").json()
    assert [s["title"] for s in doc["items"]] == ["On logs", "Another"]
    assert doc["next_offset"] is None
    first = doc["items"][0]
    assert first["statement"] == log.statement
    assert first["index"] == 300
    expected = {k.value: n for k, n in log.endorsers.items()}
    assert first["tally"]["by_kind"] == expected
    assert first["tally"]["total"] == 287
    assert doc["items"][1]["tally"]["total"] == 1
    page = log.api.get("/api/v1/statements", params={"limit": 1}).json()
    assert [s["title"] for s in page["items"]] == ["On logs"]
    assert page["next_offset"] == 1
    page = log.api.get("/api/v1/statements", params={"offset": 1, "limit": 1}).json()
    assert [s["title"] for s in page["items"]] == ["Another"]
    assert page["next_offset"] is None


def test_statement_detail(log: Log) -> None:
    doc = log.api.get(f"/api/v1/statements/{log.statement}").json()
    assert doc["text"] == "Logs must be verifiable.\n\tYes.\n"
    assert doc["authors"] == [log.maker.sid("s0").hex(), log.maker.sid("s1").hex()]
    assert [a["name"] for a in doc["author_details"]] == [
        "République française",
        "Signatory number 1",
    ]
    assert doc["tally"]["total"] == 287
    problem(log.api.get("/api/v1/statements/" + "0" * 64), 404, "not_found")
    problem(log.api.get("/api/v1/statements/nope"), 400, "invalid_parameter")


def test_endorsements_paginated_and_filtered(log: Log) -> None:
    url = f"/api/v1/statements/{log.statement}/endorsements"
    seen = []
    offset: int | None = 0
    while offset is not None:
        doc = log.api.get(url, params={"offset": offset, "limit": 100}).json()
        seen += doc["items"]
        offset = doc["next_offset"]
    assert len(seen) == 287
    assert [e["index"] for e in seen] == sorted(e["index"] for e in seen)
    ids = {e["signatory"] for e in seen}
    assert log.maker.sid("s2").hex() not in ids  # withdrawn
    assert log.maker.sid("s3").hex() in ids  # rotated and revoked its old key: still counted
    assert seen[0]["comment"] is None
    states = log.api.get(url, params={"kind": "state", "limit": 1000}).json()["items"]
    assert len(states) == log.endorsers[Kind.STATE]
    assert {e["kind"] for e in states} == {"state"}
    fr = log.api.get(url, params={"kind": "company", "country": "FR", "limit": 1000}).json()
    assert fr["items"] and {(e["kind"], e["country"]) for e in fr["items"]} == {("company", "FR")}
    problem(log.api.get(url, params={"kind": "alien"}), 422, "invalid_request")
    problem(log.api.get(url, params={"country": "fr"}), 422, "invalid_request")
    problem(log.api.get(url, params={"limit": 0}), 422, "invalid_request")
    problem(log.api.get(url, params={"limit": 1001}), 422, "invalid_request")
    problem(log.api.get(f"/api/v1/statements/{'1' * 64}/endorsements"), 404, "not_found")


def test_signatories(log: Log) -> None:
    s3 = log.maker.sid("s3").hex()
    doc = log.api.get(f"/api/v1/signatories/{s3}").json()
    assert doc["signatory"] == s3
    assert doc["active"] is True  # only its former key was revoked
    assert len(doc["keys"]) == 2
    # Found by the hash of any of its keys.
    assert log.api.get(f"/api/v1/signatories/{doc['keys'][1]}").json()["signatory"] == s3
    problem(log.api.get("/api/v1/signatories/" + "0" * 64), 404, "not_found")
    problem(log.api.get("/api/v1/signatories/ABC"), 400, "invalid_parameter")


def test_signatory_search(log: Log) -> None:
    doc = log.api.get("/api/v1/signatories", params={"q": "république"}).json()
    assert [s["name"] for s in doc["items"]] == ["République française"]
    doc = log.api.get("/api/v1/signatories", params={"q": "s10.example.org"}).json()
    assert [s["name"] for s in doc["items"]] == ["Signatory number 10"]
    doc = log.api.get("/api/v1/signatories", params={"q": "number 1", "limit": 5}).json()
    assert len(doc["items"]) == 5
    assert log.api.get("/api/v1/signatories", params={"q": "zzz"}).json()["items"] == []
    problem(log.api.get("/api/v1/signatories"), 422, "invalid_request")
    problem(log.api.get("/api/v1/signatories", params={"q": ""}), 422, "invalid_request")


def test_control_characters_in_any_query_parameter_answer_422(log: Log) -> None:
    # SQLite's LIKE stops at a NUL: q=%00 matched every signatory.
    for query in ("q=%00", "q=r%C3%A9p%00", "q=a%0Ab", "q=%7F", "q=%C2%85", "q=x&%00=1"):
        r = log.api.get("/api/v1/signatories?" + query)
        doc = problem(r, 422, "invalid_request")
        assert {e["type"] for e in doc["errors"]} == {"control_character"}, doc
        assert doc["errors"][0]["loc"][0] == "query"
    for path in (
        "/api/v1/statements?offset=0%09",
        f"/api/v1/statements/{log.statement}/endorsements?country=F%00R",
        "/api/v1/proofs/inclusion?index=0&leaf_hash=%1b",
    ):
        problem(log.api.get(path), 422, "invalid_request")
    # Printable text, tabs excepted, is still searched as before.
    doc = log.api.get("/api/v1/signatories", params={"q": "république"}).json()
    assert [s["name"] for s in doc["items"]] == ["République française"]
    # The schema says so, for every string in a query.
    paths = log.api.get("/openapi.json").json()["paths"]
    (q,) = [p for p in paths["/api/v1/signatories"]["get"]["parameters"] if p["name"] == "q"]
    assert q["schema"]["pattern"] == NO_CONTROL_PATTERN


# --- HTTP behaviour -----------------------------------------------------------------------


def test_unknown_routes_and_methods_are_problems(log: Log) -> None:
    problem(log.api.get("/nothing/here"), 404, "not_found")
    r = log.api.get("/api/v1/records")
    problem(r, 405, "method_not_allowed")
    assert "POST" in r.headers["allow"]
    problem(log.api.request("DELETE", "/checkpoint"), 405, "method_not_allowed")


def test_cors_is_open_for_reads_only(log: Log) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    r = log.api.get("/api/v1/statements", headers=origin)
    assert r.headers["access-control-allow-origin"] == "*"
    r = log.api.request(
        "OPTIONS",
        "/tile/entries/000",
        headers={**origin, "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert "POST" not in r.headers["access-control-allow-methods"]
    r = log.api.request(
        "OPTIONS",
        "/api/v1/records",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    r = log.api.post("/api/v1/records", content=b"x\n", headers=origin)
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers


def test_healthz_and_metrics(log: Log) -> None:
    doc = log.api.get("/healthz").json()
    assert doc == {"status": "ok", "size": SIZE}
    assert log.api.get("/readyz").json() == doc
    assert log.api.get("/livez").json() == {"status": "ok"}
    r = log.api.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert f"ledger_log_entries {SIZE}\n" in text
    assert 'ledger_build_info{version="' in text
    assert 'route="/tile/{path:path}",status="200"' in text
    assert 'route="/api/v1/records/batch",status="200"' in text
    assert "ledger_batch_records_count" in text
    sequenced = next(
        line for line in text.splitlines() if line.startswith("ledger_records_sequenced_total ")
    )
    assert int(sequenced.split()[1]) == SIZE


def test_metrics_labels_stay_bounded_whatever_the_methods(log: Log) -> None:
    """Each distinct method name once made a series of its own, for ever."""
    for i in range(200):
        r = log.api.request(f"X{i}", "/api/v1/log")
        assert r.status_code == 405, r.text
    text = log.api.get("/metrics").text
    methods = set(re.findall(r'^ledger_http_requests_total\{method="([^"]*)"', text, re.M))
    assert methods <= KNOWN_METHODS | {"other"}, methods
    line = 'ledger_http_requests_total{method="other",route="/api/v1/log",status="405"} '
    counts = [int(x.removeprefix(line)) for x in text.splitlines() if x.startswith(line)]
    assert counts and counts[0] >= 200, counts
    assert len(text.splitlines()) < 2000  # the series do not grow with the methods


def test_openapi_describes_the_api_with_examples(log: Log) -> None:
    doc = log.api.get("/openapi.json").json()
    paths = doc["paths"]
    for path in [
        "/api/v1/records",
        "/api/v1/records/batch",
        "/checkpoint",
        "/tile/{path}",
        "/api/v1/log",
        "/api/v1/entries/{index}",
        "/api/v1/entries/by-leaf/{leaf_hash}",
        "/api/v1/proofs/inclusion",
        "/api/v1/proofs/consistency",
        "/api/v1/receipts/{entry}",
        "/api/v1/statements",
        "/api/v1/statements/{statement_id}",
        "/api/v1/statements/{statement_id}/endorsements",
        "/api/v1/signatories",
        "/api/v1/signatories/{key_hash}",
        "/livez",
        "/readyz",
        "/healthz",
        "/metrics",
    ]:
        assert path in paths, path
    post = paths["/api/v1/records"]["post"]
    assert "text/plain" in post["requestBody"]["content"]
    assert "example" in post["requestBody"]["content"]["text/plain"]
    assert {"201", "200", "409", "413", "422"} <= set(post["responses"])
    assert "application/problem+json" in post["responses"]["409"]["content"]
