"""The worked examples of docs/spec.md and the vectors in tests/vectors/records/.

Three things are checked: the committed vectors are exactly what the independent
generator writes; they parse, verify and hash as examples.json (and the spec)
says; and every example block in docs/spec.md is byte-identical to its vector
file, so the spec cannot drift from the code.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ledger.core import ed25519
from ledger.core.entry import ZERO_HASH, entry_leaf_hash, parse_entry
from ledger.core.errors import FormatError, SignatureError, TooLargeError
from ledger.core.merkle import root_from_leaf_hashes
from ledger.core.records import (
    MAX_RECORD_SIZE,
    SignedRecord,
    Statement,
    encode_body,
    parse_record,
    sign_record,
    verify_signatures,
)
from ledger.core.state import MemoryState

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "records"
SPEC = ROOT / "docs" / "spec.md"
EXAMPLES: dict[str, Any] = json.loads((VECTORS / "examples.json").read_text(encoding="utf-8"))
MUTATIONS: list[dict[str, str]] = json.loads((VECTORS / "mutations.json").read_text())
ERRORS = {"FormatError": FormatError, "SignatureError": SignatureError}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_vectors", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_vectors_are_the_generator_output(tmp_path: Path) -> None:
    _generator().main(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in VECTORS.iterdir() if p.suffix in (".txt", ".json"))
    assert written == committed
    for name in written:
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), name


@pytest.mark.parametrize("name", sorted(EXAMPLES["records"]))
def test_example_records_parse_verify_and_hash(name: str) -> None:
    info = EXAMPLES["records"][name]
    data = (VECTORS / info["file"]).read_bytes()
    record = parse_record(data)
    verify_signatures(record)
    assert record.encode() == data
    assert info["type"] == record.body.TYPE
    assert len(record.body_bytes) == info["body_size"]
    assert record.record_id.hex() == info["record_id_hex"]
    assert [base64.b64encode(s.public_key).decode() for s in record.signatures] == info["signers"]


def test_example_keys_and_ids() -> None:
    for key in EXAMPLES["keys"].values():
        seed = hashlib.sha256(key["seed_label"].encode()).digest()
        assert seed.hex() == key["seed_hex"]
        pub = base64.b64decode(key["public_key_b64"])
        assert ed25519.key_hash(pub).hex() == key["key_hash_hex"]
    statement = parse_record((VECTORS / "statement.txt").read_bytes())
    assert isinstance(statement.body, Statement)
    assert [a.hex() for a in statement.body.authors] == [
        EXAMPLES["keys"]["1"]["key_hash_hex"],
        EXAMPLES["keys"]["2"]["key_hash_hex"],
    ]
    assert statement.body.text == EXAMPLES["statement_text"]


def test_example_log_chains_and_hashes_to_the_checkpoint() -> None:
    prev = ZERO_HASH
    last_time = 0
    leaves = []
    for item in EXAMPLES["log"]:
        data = base64.b64decode(item["entry_b64"])
        entry = parse_entry(data)
        assert entry.index == item["index"]
        assert entry.prev == prev
        assert entry.time_ms == item["time_ms"] >= last_time
        verify_signatures(entry.record)
        record_file = VECTORS / EXAMPLES["records"][item["record"]]["file"]
        assert entry.record_bytes == record_file.read_bytes()
        leaf = entry_leaf_hash(data)
        assert leaf.hex() == item["leaf_hash_hex"] == entry.leaf_hash().hex()
        leaves.append(leaf)
        prev, last_time = leaf, entry.time_ms
    assert (VECTORS / "entry-4.txt").read_bytes() == base64.b64decode(
        EXAMPLES["log"][4]["entry_b64"]
    )
    root = root_from_leaf_hashes(leaves)
    assert root.hex() == EXAMPLES["checkpoint"]["root_hash_hex"]

    # The checkpoint is a signed note by the log key (C2SP signed-note, tlog-checkpoint).
    note = (VECTORS / "checkpoint.txt").read_bytes()
    text, sig_lines = note.split(b"\n\n")
    text += b"\n"
    assert text == (
        f"{EXAMPLES['origin']}\n{len(leaves)}\n".encode() + base64.b64encode(root) + b"\n"
    )
    name, key_id_hex, vkey_b64 = EXAMPLES["log_vkey"].split("+")
    vkey = base64.b64decode(vkey_b64)
    assert vkey[0] == 0x01 and name == EXAMPLES["origin"]
    pub = vkey[1:]
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
    assert key_id.hex() == key_id_hex
    dash, sig_name, sig_b64 = sig_lines.decode().rstrip("\n").split(" ")
    assert (dash, sig_name) == ("\u2014", name)
    sig = base64.b64decode(sig_b64)
    assert sig[:4] == key_id
    ed25519.verify(pub, sig[4:], text)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m["name"] for m in MUTATIONS])
def test_mutations_are_rejected(mutation: dict[str, str]) -> None:
    data = base64.b64decode(mutation["data_b64"])
    expected = ERRORS[mutation["error"]]
    is_entry = mutation["base"].startswith("entry-")
    if mutation["stage"] == "parse":
        with pytest.raises(expected):
            (parse_entry if is_entry else parse_record)(data)
        return
    assert mutation["stage"] == "verify"
    parsed = parse_entry(data).record if is_entry else parse_record(data)
    with pytest.raises(expected):
        verify_signatures(parsed)


def test_mutations_are_named_and_cover_the_spec_list() -> None:
    names = [m["name"] for m in MUTATIONS]
    assert len(names) == len(set(names))
    for required in [
        "sig-bit-flip",
        "crlf",
        "signed-at-leading-zero",
        "non-canonical-base64-key",
        "trailing-bytes",
        "unknown-version",
        "swapped-field-order",
        "missing-signature",
        "extra-signature",
        "wrong-signer-register",
        "duplicated-author",
        "identity-key-register",
        "signature-s-not-reduced",
    ]:
        assert required in names
    for m in MUTATIONS:
        data = base64.b64decode(m["data_b64"])
        base = m["base"]
        original = (
            base64.b64decode(EXAMPLES["log"][int(base.split("-")[1])]["entry_b64"])
            if base.startswith("entry-")
            else (VECTORS / f"{base}.txt").read_bytes()
        )
        assert data != original, m["name"]


# --- the spec itself ---------------------------------------------------------------------

_BLOCK = re.compile(r"<!-- vector: (\S+) -->\n```\n(.*?)\n```\n", re.DOTALL)


def test_spec_example_blocks_are_the_vector_files() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    blocks = _BLOCK.findall(spec)
    assert spec.count("<!-- vector:") == len(blocks)
    names = [name for name, _ in blocks]
    for required in ("registration-1.txt", "statement.txt", "endorsement.txt", "entry-4.txt"):
        assert required in names
    for name, content in blocks:
        assert (content + "\n").encode("utf-8") == (VECTORS / name).read_bytes(), name


def test_spec_states_the_vector_hashes() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    for info in EXAMPLES["records"].values():
        assert info["record_id_hex"] in spec
    for item in EXAMPLES["log"]:
        assert item["leaf_hash_hex"] in spec
    for key in EXAMPLES["keys"].values():
        assert key["public_key_b64"] in spec and key["key_hash_hex"] in spec
    assert EXAMPLES["log_vkey"] in spec
    assert EXAMPLES["checkpoint"]["root_hash_hex"] in spec


def test_spec_statement_text_limit() -> None:
    """The spec's 48,573 bytes: the largest text of a typical two-author statement."""
    spec = SPEC.read_text(encoding="utf-8")
    assert "**48,573 bytes**" in spec and "65313 − o − t − 210 × a" in spec
    assert "65,385" in spec and str(MAX_RECORD_SIZE) == "65385"
    keys = [_generator().KEYS[i] for i in (1, 2)]
    origin = "ledger.example.org/paris-call"
    assert len(origin) == 29

    def record(n: int) -> SignedRecord:
        body = Statement(origin, 1767229200, "T" * 100, tuple(k.id for k in keys), "x" * n)
        out = SignedRecord(body, encode_body(body))
        for k in keys:
            out = sign_record(out, k.sign, k.pub)
        return out

    assert parse_record(record(48573).encode())
    with pytest.raises(TooLargeError):
        record(48574)


def test_example_log_satisfies_the_semantic_rules() -> None:
    """The spec says every example entry is valid, and what the state is after entry 7."""
    state = MemoryState(EXAMPLES["origin"])
    for item in EXAMPLES["log"]:
        data = base64.b64decode(item["entry_b64"])
        entry = parse_entry(data)
        verify_signatures(entry.record)
        state.append(entry, entry_leaf_hash(data))
    keys = {i: base64.b64decode(k["public_key_b64"]) for i, k in EXAMPLES["keys"].items()}
    signatory_1 = state.signatories[bytes.fromhex(EXAMPLES["keys"]["1"]["key_hash_hex"])]
    assert signatory_1.active and signatory_1.current_key == keys["4"]
    statement_id = bytes.fromhex(EXAMPLES["records"]["statement"]["record_id_hex"])
    assert state.statements[statement_id].total == 0
