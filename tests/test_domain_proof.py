"""The domain-proof format and match (ledger.core.domainproof, docs/spec.md "Domain proofs")."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.domainproof import (
    MAX_PROOF_SIZE,
    VERSION_LINE,
    DomainConfirmation,
    DomainProof,
    DomainProofFormatError,
    DomainProofMismatchError,
    DomainProofMissingError,
    DomainProofTooLargeError,
    DomainProofVersionError,
    OtherLine,
    SignatoryLine,
    encode_domain_proof,
    join_txt_strings,
    match_domain_proof,
    parse_domain_proof,
    txt_name,
    txt_strings,
    well_known_url,
    zone_file_strings,
)
from ledger.core.errors import FormatError, VerificationError

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "domainproof"
SPEC = ROOT / "docs" / "spec.md"
ORIGIN = "ledger.example.org/paris-call"
SID1 = bytes.fromhex("343cfa0d397aea2cbdba93e2bf05e834632c59da0001ae63df4259b34d979e03")


def _load(name: str) -> object:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def test_committed_vectors_are_the_generator_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("generate_domainproof", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr("sys.argv", ["generate.py", str(tmp_path)])
    module.main()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in VECTORS.iterdir() if p.is_file() and p.name != "generate.py"
    )
    for made in sorted(tmp_path.iterdir()):
        assert made.read_bytes() == (VECTORS / made.name).read_bytes(), made.name


@pytest.mark.parametrize("name", ["example-org.txt", "several.txt", "long.txt"])
def test_good_vectors_parse_and_encode_back(name: str) -> None:
    data = (VECTORS / name).read_bytes()
    proof = parse_domain_proof(data)
    assert encode_domain_proof(proof) == data
    assert proof.signatories


def test_example_vector_is_the_spec_example() -> None:
    proof = parse_domain_proof((VECTORS / "example-org.txt").read_bytes())
    assert proof == DomainProof((SignatoryLine(ORIGIN, SID1),))
    blocks = re.findall(
        r"<!-- domain-proof: (\S+) -->\n```\n(.*?)```\n", SPEC.read_text(encoding="utf-8"), re.S
    )
    assert blocks, "docs/spec.md shows the domain-proof examples"
    for name, text in blocks:
        assert text.encode() == (VECTORS / name).read_bytes(), name


def test_unknown_keyword_lines_are_kept_and_ignored() -> None:
    proof = parse_domain_proof((VECTORS / "several.txt").read_bytes())
    others = [line for line in proof.lines if isinstance(line, OtherLine)]
    assert others == [OtherLine("contact", "contact https://example.org/security.txt")]
    assert len(proof.signatories) == 3


@pytest.mark.parametrize(
    "case", _load("matches.json"), ids=lambda c: f"{c['proof']}-{c['verdict']}-{c['why']}"
)
def test_match_vectors(case: dict[str, str]) -> None:
    proof = parse_domain_proof((VECTORS / case["proof"]).read_bytes())
    sid = bytes.fromhex(case["signatory"])
    args = (proof, case["origin"], sid, case["domain"])
    if case["verdict"] == "confirmed":
        assert match_domain_proof(*args) == DomainConfirmation(case["domain"], case["origin"], sid)
    elif case["verdict"] == "mismatch":
        with pytest.raises(DomainProofMismatchError) as e:
            match_domain_proof(*args)
        assert e.value.code == "domain_proof_mismatch"
        assert e.value.listed == proof.signatories_for(case["origin"])
        assert sid not in e.value.listed
        assert isinstance(e.value, VerificationError)
    else:
        assert case["verdict"] == "missing"
        with pytest.raises(DomainProofMissingError) as e2:
            match_domain_proof(*args)
        assert e2.value.code == "domain_proof_missing"


def test_missing_says_where_the_id_is_named() -> None:
    proof = parse_domain_proof((VECTORS / "example-org.txt").read_bytes())
    with pytest.raises(DomainProofMissingError, match="paris-call only"):
        match_domain_proof(proof, "ledger.example.org/other", SID1, "example.org")


def test_match_checks_its_arguments() -> None:
    proof = parse_domain_proof((VECTORS / "example-org.txt").read_bytes())
    with pytest.raises(FormatError):
        match_domain_proof(proof, ORIGIN, SID1, "Example.org")
    with pytest.raises(FormatError):
        match_domain_proof(proof, "bad origin", SID1, "example.org")


@pytest.mark.parametrize("case", _load("mutations.json"), ids=lambda c: c["name"])
def test_mutations_are_rejected_naming_the_line(case: dict[str, object]) -> None:
    data = base64.b64decode(str(case["data_b64"]))
    with pytest.raises(DomainProofFormatError) as e:
        parse_domain_proof(data)
    assert e.value.code == case["code"], e.value
    assert e.value.line == case["line"], e.value
    assert f"line {case['line']}" in str(e.value)
    if case["code"] == "domain_proof_too_large":
        assert isinstance(e.value, DomainProofTooLargeError)
    if case["code"] == "unsupported_domain_proof_version":
        assert isinstance(e.value, DomainProofVersionError)


def test_size_limit_is_exact() -> None:
    head = f"{VERSION_LINE}\n".encode()
    pad = MAX_PROOF_SIZE - len(head) - len("note \n")
    data = head + b"note " + b"x" * pad + b"\n"
    assert len(data) == MAX_PROOF_SIZE
    parse_domain_proof(data)
    with pytest.raises(DomainProofTooLargeError):
        parse_domain_proof(data[:-1] + b"x\n")


def test_txt_strings_join_to_the_document() -> None:
    doc = _load("txt.json")
    assert isinstance(doc, dict)
    data = (VECTORS / doc["proof"]).read_bytes()
    strings = [s.encode() for s in doc["strings"]]
    assert len(strings) > 1
    assert txt_strings(data) == strings
    assert join_txt_strings(strings) == data
    assert all(len(s) <= 255 for s in strings)


def test_zone_file_form_escapes_lf_quote_and_backslash() -> None:
    data = encode_domain_proof(DomainProof.of([('a"b\\c', SID1)]))
    text = zone_file_strings(data)
    assert text.startswith('"endorsement-ledger/v1 domain\\010signatory a\\"b\\\\c ')
    assert text.endswith('\\010"')
    assert "\n" not in text


def test_names() -> None:
    assert txt_name("example.org") == "_endorsement-ledger.example.org"
    assert well_known_url("example.org") == "https://example.org/.well-known/endorsement-ledger"
    with pytest.raises(FormatError):
        txt_name("localhost")
    with pytest.raises(FormatError):
        well_known_url("example.org/evil")


# --- properties ---------------------------------------------------------------------------

_origin_char = st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) != "+"])
origins = st.text(_origin_char, min_size=1, max_size=40)
ids = st.binary(min_size=32, max_size=32)
keywords = st.from_regex(r"[a-z][a-z0-9-]{0,31}", fullmatch=True).filter(lambda k: k != "signatory")
words = st.text(st.sampled_from([chr(c) for c in range(0x21, 0x7F)]), min_size=1, max_size=20)
other_lines = st.builds(
    lambda k, ws: OtherLine(k, " ".join([k, *ws])), keywords, st.lists(words, max_size=4)
)
lines = st.lists(
    st.one_of(st.builds(SignatoryLine, origins, ids), other_lines), max_size=20
).filter(
    lambda ls: (
        len({(x.origin, x.signatory_id) for x in ls if isinstance(x, SignatoryLine)})
        == sum(isinstance(x, SignatoryLine) for x in ls)
    )
)


@settings(max_examples=300, deadline=None)
@given(lines)
def test_round_trip(proof_lines: list[SignatoryLine | OtherLine]) -> None:
    proof = DomainProof(tuple(proof_lines))
    data = encode_domain_proof(proof)
    assert parse_domain_proof(data) == proof
    assert parse_domain_proof(join_txt_strings(txt_strings(data))) == proof


def _check_strict(data: bytes) -> None:
    try:
        proof = parse_domain_proof(data)
    except DomainProofFormatError as e:
        assert e.line >= 1
        return
    assert encode_domain_proof(proof) == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_are_rejected_or_round_trip(data: bytes) -> None:
    _check_strict(data)
    _check_strict(f"{VERSION_LINE}\n".encode() + data)


@settings(max_examples=500, deadline=None)
@given(lines, st.data())
def test_mutated_proofs_are_rejected_or_round_trip(
    proof_lines: list[SignatoryLine | OtherLine], data: st.DataObject
) -> None:
    doc = bytearray(encode_domain_proof(DomainProof(tuple(proof_lines))))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        i = data.draw(st.integers(0, len(doc) - 1 if doc else 0))
        if op == "flip" and doc:
            doc[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            doc.insert(i, data.draw(st.sampled_from([0x20, 0x0A, 0x0D, 0x09, 0x00, 0x2B, 0xC3])))
        elif doc:
            del doc[i]
    _check_strict(bytes(doc))
