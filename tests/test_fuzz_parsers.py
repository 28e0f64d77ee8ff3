"""Hypothesis fuzzing of every parser of the core: only the project's own errors escape.

Each parser of ``ledger/`` (records, entries, signed notes and checkpoints, tlog-proof
receipts, trust policies, tile paths and entry bundles, the encodings, vkeys and key
names, the verifier's state file, fork evidence) and the checks that run on what
they parse get arbitrary bytes and text, and mutations of valid examples (the
spec's vectors in tests/vectors/ and a generated log): bit flips, bytes changed,
inserted or deleted, lines dropped, duplicated or swapped, truncations, splices.
Whatever the input, a call either returns or raises a
:class:`~ledger.core.errors.LedgerError`; an IndexError, KeyError, ValueError that is not
a FormatError, UnicodeDecodeError, RecursionError, OverflowError... is a bug (the
service would turn it into a 500, the verifier into a traceback).

Examples per parser: ``LEDGER_FUZZ_EXAMPLES`` times 8 (default 25, so 200: what CI
runs); derandomized, so a run is reproducible.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from logfactory import LogFactory
from test_policy import SPEC_SHAPED
from test_policy import _checkpoint as cosigned_checkpoint

from ledger.core import merkle
from ledger.core.checkpoint import open_checkpoint, parse_checkpoint_text
from ledger.core.ed25519 import check_public_key
from ledger.core.ed25519 import verify as ed25519_verify
from ledger.core.encoding import b64decode_strict, parse_hex32, parse_uint
from ledger.core.entry import parse_entry, parse_entry_strict
from ledger.core.errors import LedgerError
from ledger.core.fork import check_evidence, evidence_bytes, fork_evidence
from ledger.core.note import check_key_name, open_note, parse_note, parse_vkey, split_cosignature
from ledger.core.policy import parse_policy
from ledger.core.receipt import Receipt, parse_receipt, verify_receipt
from ledger.core.records import (
    encode_body,
    parse_body,
    parse_complete_record_fast,
    parse_record,
    parse_record_strict,
    verify_signatures,
)
from ledger.core.tiles import decode_bundle, parse_tile_path
from ledger.verify import statecodec
from ledger.verify.source import DirectorySource
from ledger.verify.statefile import VerifierState
from ledger.verify.trust import Trust
from ledger.verify.verifier import verify_log

EXAMPLES = 8 * int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "25"))
VECTORS = Path(__file__).parent / "vectors"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- valid examples to mutate ------------------------------------------------------


def _vectors() -> dict[str, list[bytes]]:
    examples = json.loads((VECTORS / "records" / "examples.json").read_text())
    notes = json.loads((VECTORS / "note" / "vectors.json").read_text())
    records = [p.read_bytes() for p in sorted((VECTORS / "records").glob("*.txt"))]
    return {
        "records": [r for r in records if b"\n\nsig " in r or r.count(b"\n\n")],
        "bodies": [r.split(b"\n\n", 1)[0] + b"\n" for r in records],
        "entries": [base64.b64decode(e["entry_b64"]) for e in examples["log"]],
        "notes": [
            n["note"].encode() if "note" in n else base64.b64decode(n["note_b64"])
            for n in notes["notes"]
        ],
        "vkeys": [v["vkey"].encode() for v in notes["vkeys"]] + [examples["log_vkey"].encode()],
        "good_vkeys": [v["vkey"].encode() for v in notes["vkeys"] if v["expected"] == "accept"],
    }


@dataclass
class Log:
    """A small generated log, its checkpoints, receipts, bundles, state and evidence."""

    trust: Trust
    vkey: str
    origin: str
    checkpoints: list[bytes]
    receipts: list[bytes]
    leaves: list[bytes]
    bundles: list[bytes]
    state: bytes
    evidence: list[bytes]


def _log() -> Log:
    with tempfile.TemporaryDirectory() as tmp:
        return _log_in(Path(tmp))


def _log_in(tmp: Path) -> Log:
    f = LogFactory()
    f.grow(40)
    directory = f.write(tmp / "log")
    trust = Trust.from_vkeys([f.log_key.vkey])
    result = verify_log(DirectorySource(directory), trust)
    assert result.state is not None
    receipts, leaves = [], []
    for index in (0, 17, 39):
        proof = merkle.inclusion_proof(index, 40, f.store)
        receipts.append(Receipt(index, tuple(proof), f.checkpoint(40)).encode())
        leaves.append(f.leaf_hash(index))
    other = LogFactory(seed="other history")
    other.grow(30)
    evidence = [
        evidence_bytes(fork_evidence(f.checkpoint(20), other.checkpoint(20), [])),
        evidence_bytes(
            fork_evidence(
                f.checkpoint(10),
                other.checkpoint(30),
                merkle.consistency_proof(10, 30, other.store),
            )
        ),
    ]
    return Log(
        trust=trust,
        vkey=f.log_key.vkey,
        origin=trust.origin,
        checkpoints=[f.checkpoint(40), f.checkpoint(1), cosigned_checkpoint("X1", "Y2")],
        receipts=receipts,
        leaves=leaves,
        bundles=[
            p.read_bytes()
            for p in sorted((directory / "tile" / "entries").rglob("*"))
            if p.is_file()
        ],
        state=result.state.to_bytes(),
        evidence=evidence,
    )


VEC = _vectors()
LOG = _log()


# --- mutations ---------------------------------------------------------------------


class Seeds(tuple[bytes, ...]):
    """Examples to mutate, with a short repr (Hypothesis prints strategies)."""

    def __repr__(self) -> str:
        return f"<{len(self)} seeds>"


@st.composite
def mutated(draw: st.DrawFn, seeds: Seeds) -> bytes:
    """A valid example with a few random edits."""
    data = bytearray(seeds[draw(st.integers(0, len(seeds) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 8))
        pos = draw(st.integers(0, len(data)))
        if kind == 0 and data:  # flip a bit
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == 1 and data:  # replace a byte (often a separator)
            i = min(pos, len(data) - 1)
            data[i] = draw(
                st.sampled_from([0, 9, 10, 13, 32, 43, 45, 47, 48, 61, 0x80, 0xE2, 0xFF])
            )
        elif kind == 2:  # insert bytes
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == 3:  # delete a run
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == 4:  # truncate
            del data[pos:]
        lines = bytes(data).split(b"\n")
        if kind == 5 and lines:  # drop a line
            del lines[min(pos, len(lines) - 1)]
        elif kind == 6 and lines:  # duplicate a line
            i = min(pos, len(lines) - 1)
            lines.insert(i, lines[i])
        elif kind == 7 and len(lines) > 1:  # swap two lines
            i = pos % (len(lines) - 1)
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif kind == 8:  # splice with another example
            other = seeds[draw(st.integers(0, len(seeds) - 1))]
            lines = lines[: pos % (len(lines) + 1)] + other.split(b"\n")[pos % 3 :]
        if kind >= 5:
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def inputs(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, arbitrary text as UTF-8, and mutations of the seeds."""
    return st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
        mutated(Seeds(seeds)),
        mutated(Seeds(seeds)),
    )


def as_text(data: bytes) -> str:
    """Bytes as the str a caller may hold (invalid UTF-8 kept as surrogates)."""
    return data.decode("utf-8", "surrogateescape")


def only_ledger_errors(call: Callable[[], object]) -> None:
    """Run ``call``; anything it raises must be a LedgerError."""
    with contextlib.suppress(LedgerError):
        call()


# --- records and entries -----------------------------------------------------------


@FUZZ
@given(data=inputs(VEC["records"] + VEC["bodies"]), draft=st.booleans())
def test_records(data: bytes, draft: bool) -> None:
    def run() -> None:
        record = parse_record(data, allow_draft=draft)
        assert record.encode() == data  # strict parsers round-trip exactly
        verify_signatures(record)

    def body() -> None:
        assert encode_body(parse_body(data)) == data  # bodies round-trip exactly too

    only_ledger_errors(run)
    only_ledger_errors(body)


@FUZZ
@given(data=inputs(VEC["entries"]))
def test_entries(data: bytes) -> None:
    def run() -> None:
        entry = parse_entry(data)
        verify_signatures(entry.record)

    only_ledger_errors(run)


def _outcome(call: Callable[[], object]) -> object:
    """What ``call`` returns, or the code, field and message of the LedgerError it raises."""
    try:
        return call()
    except LedgerError as e:
        return (type(e), e.code, e.field, e.index, str(e))


@FUZZ
@given(data=inputs(VEC["records"]))
def test_record_fast_path_agrees(data: bytes) -> None:
    # tests/test_parse_fast.py: the fast path takes nothing the strict parser rejects.
    fast = parse_complete_record_fast(data)
    if fast is not None:
        strict = parse_record_strict(data)
        assert (fast, fast.body_bytes, fast.encode()) == (strict, strict.body_bytes, data)
    assert _outcome(lambda: parse_record(data)) == _outcome(lambda: parse_record_strict(data))


@FUZZ
@given(data=inputs(VEC["entries"]))
def test_entry_fast_path_agrees(data: bytes) -> None:
    assert _outcome(lambda: parse_entry(data)) == _outcome(lambda: parse_entry_strict(data))


# --- notes, checkpoints, vkeys -----------------------------------------------------


@FUZZ
@given(data=inputs(VEC["notes"]))
def test_notes(data: bytes) -> None:
    verifiers = [parse_vkey(v.decode()) for v in VEC["good_vkeys"]]
    only_ledger_errors(lambda: parse_note(data))
    only_ledger_errors(lambda: open_note(data, verifiers))
    only_ledger_errors(lambda: split_cosignature(data[:80]))


@FUZZ
@given(data=inputs(VEC["vkeys"]))
def test_vkeys_and_key_names(data: bytes) -> None:
    text = as_text(data)
    only_ledger_errors(lambda: parse_vkey(text))
    only_ledger_errors(lambda: check_key_name(text))
    only_ledger_errors(lambda: Trust.from_vkeys([text]))


@FUZZ
@given(raw=inputs(LOG.checkpoints))
def test_checkpoints(raw: bytes) -> None:
    log = LOG
    verifiers = [parse_vkey(log.vkey)]
    only_ledger_errors(lambda: parse_checkpoint_text(as_text(raw)))
    only_ledger_errors(lambda: open_checkpoint(raw, verifiers, log.origin))
    only_ledger_errors(lambda: log.trust.open_checkpoint(raw))


# --- receipts, policies, fork evidence ---------------------------------------------


@FUZZ
@given(raw=inputs(LOG.receipts), which=st.integers(0, len(LOG.leaves) - 1))
def test_receipts(raw: bytes, which: int) -> None:
    log = LOG
    leaf = log.leaves[which]
    verifiers = [parse_vkey(log.vkey)]
    only_ledger_errors(lambda: verify_receipt(parse_receipt(raw), leaf, verifiers, log.origin))


SIMPLE_POLICY = f"log {LOG.vkey}\nquorum none\n".encode()


@FUZZ
@given(raw=inputs([SPEC_SHAPED, SIMPLE_POLICY]), which=st.integers(0, len(LOG.checkpoints) - 1))
def test_policies(raw: bytes, which: int) -> None:
    checkpoint = LOG.checkpoints[which]

    def run() -> None:
        policy = parse_policy(raw)
        policy.check_quorum(checkpoint)

    only_ledger_errors(run)
    only_ledger_errors(lambda: Trust.from_policy(raw))


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_NESTED = (
    JSON_LEAF
    | st.lists(JSON_LEAF, max_size=4)
    | st.dictionaries(st.text(max_size=10), JSON_LEAF, max_size=4)
)


@FUZZ
@given(raw=inputs(LOG.evidence))
def test_fork_evidence(raw: bytes) -> None:
    only_ledger_errors(lambda: check_evidence(raw, LOG.trust))


@FUZZ
@given(
    doc=st.one_of(
        JSON_LEAF,
        st.lists(JSON_NESTED, max_size=4),
        st.dictionaries(st.text(max_size=10), JSON_NESTED, max_size=4),
    )
)
def test_fork_evidence_documents(doc: object) -> None:
    log = LOG
    """Well-formed JSON of any shape (and near-valid documents) is refused cleanly."""
    base = json.loads(log.evidence[1])
    only_ledger_errors(lambda: check_evidence(json.dumps(doc).encode(), log.trust))
    if isinstance(doc, dict):
        only_ledger_errors(lambda: check_evidence(json.dumps({**base, **doc}).encode(), log.trust))
    for key in base:
        changed = json.dumps({**base, key: doc}).encode()
        only_ledger_errors(functools.partial(check_evidence, changed, log.trust))


# --- tiles and encodings -----------------------------------------------------------


TILE_PATHS = [b"tile/0/000", b"tile/1/x001/234.p/7", b"tile/entries/x123/456", b"tile/63/000.p/1"]


@FUZZ
@given(path=inputs(TILE_PATHS))
def test_tile_paths(path: bytes) -> None:
    only_ledger_errors(lambda: parse_tile_path(as_text(path)))


@FUZZ
@given(bundle=inputs(LOG.bundles), count=st.none() | st.integers(1, 256))
def test_bundles(bundle: bytes, count: int | None) -> None:
    # (an expected_count outside 1..256 is the caller's bug: ValueError, not input)
    only_ledger_errors(lambda: decode_bundle(bundle, count))


@FUZZ
@given(data=inputs([b"0", b"12345", b"9223372036854775807", b"AAAA", b"ab" * 32]))
def test_encodings(data: bytes) -> None:
    text = as_text(data)
    only_ledger_errors(lambda: parse_uint(text, field="n"))
    only_ledger_errors(lambda: b64decode_strict(text, field="b", length=32))
    only_ledger_errors(lambda: b64decode_strict(text, field="b"))
    only_ledger_errors(lambda: parse_hex32(text, field="h"))


@FUZZ
@given(key=st.binary(max_size=40), sig=st.binary(max_size=70), msg=st.binary(max_size=40))
def test_ed25519_inputs(key: bytes, sig: bytes, msg: bytes) -> None:
    only_ledger_errors(lambda: check_public_key(key))
    only_ledger_errors(lambda: ed25519_verify(key, sig, msg))


@FUZZ
@given(
    index=st.integers(-5, 2**64),
    size=st.integers(-5, 2**64),
    hashes=st.lists(st.binary(min_size=0, max_size=33), max_size=70),
    root=st.binary(min_size=31, max_size=33),
)
def test_proof_checks(index: int, size: int, hashes: list[bytes], root: bytes) -> None:
    leaf = hashes[0] if hashes else bytes(32)
    only_ledger_errors(lambda: merkle.verify_inclusion(leaf, index, size, hashes, root))
    only_ledger_errors(lambda: merkle.verify_consistency(index, size, root, leaf, hashes))


# --- the verifier's state file -----------------------------------------------------


def _header_and_body(data: bytes) -> tuple[dict[str, object], bytes]:
    """A v2 state file's header, parsed, and its body."""
    end = data.index(b"\n") + 1
    return json.loads(data[:end]), data[end:-32]


def _sealed(header: object, body: bytes) -> bytes:
    """A v2 state file of that header and body, with the right SHA-256: what a
    damaged writer (rather than damaged storage) would leave."""
    line = json.dumps(header).encode() + b"\n"
    return line + body + hashlib.sha256(line + body).digest()


@FUZZ
@given(raw=inputs([LOG.state]))
def test_state_file(raw: bytes) -> None:
    only_ledger_errors(lambda: VerifierState.from_bytes(raw))


@FUZZ
@given(data=st.data())
def test_state_file_fields(data: st.DataObject) -> None:
    """A state file whose header fields hold other JSON values is refused cleanly
    (resealed, so that its hash is right)."""
    header, body = _header_and_body(LOG.state)
    doc: Any = header
    value = data.draw(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=10)
        | st.lists(st.integers() | st.text(max_size=5), max_size=3)
        | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)
    )
    path = data.draw(st.sampled_from(_paths(doc)))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    raw = _sealed(doc, body)
    only_ledger_errors(lambda: VerifierState.from_bytes(raw))


@FUZZ
@given(body=mutated(Seeds([_header_and_body(LOG.state)[1]])), fit=st.booleans())
def test_state_file_body(body: bytes, fit: bool) -> None:
    """A body damaged before it was hashed (the hash is right) is still refused cleanly."""
    header, _ = _header_and_body(LOG.state)
    if fit:
        header["body_length"] = len(body)
    only_ledger_errors(lambda: VerifierState.from_bytes(_sealed(header, body)))
    only_ledger_errors(lambda: statecodec.decode(body))


def _paths(doc: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every key path into a JSON document (at most a few per list)."""
    out: list[tuple[object, ...]] = []
    items: Sequence[tuple[object, object]] = []
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = [(i, v) for i, v in enumerate(doc)][:3]
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


@pytest.mark.parametrize("size", [float("inf"), 3.7, True, "12", -1, None])
def test_state_file_size_must_be_a_json_integer(size: object) -> None:
    header, body = _header_and_body(LOG.state)
    header["size"] = size
    with pytest.raises(LedgerError, match="state file is damaged"):
        VerifierState.from_bytes(_sealed(header, body))
