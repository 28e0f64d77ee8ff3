"""Generate the domain-proof vectors of docs/spec.md ("Domain proofs").

    python tests/vectors/domainproof/generate.py [OUTPUT_DIR]

Written from the spec's grammar by hand, without ``ledger``, so that the vectors
check ``ledger.core.domainproof`` against a second reading of the spec
(tests/test_domain_proof.py checks that the committed files are this output).

The signatory ids are those of example keys 1 to 4 of the spec's worked examples.

Outputs (in OUTPUT_DIR, default: this directory):
  example-org.txt    the spec's example: example.org names signatory 1 for the example log
  several.txt        two logs, three signatories and a line of an unknown keyword
  long.txt           a proof longer than one TXT string (255 bytes)
  matches.json       proof, origin, signatory, domain -> confirmed / missing / mismatch
  txt.json           long.txt as the character-strings of its TXT record
  mutations.json     named invalid documents, each with its error code and line
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

ORIGIN = "ledger.example.org/paris-call"
OTHER = "ledger.example.org/other-call"
VERSION = "endorsement-ledger/v1 domain"
IDS = {
    1: "343cfa0d397aea2cbdba93e2bf05e834632c59da0001ae63df4259b34d979e03",
    2: "a51f3d2f4e5fcc8c36840d49765ef212ed7edbe330259d83d569dd83c03fd97b",
    3: "1b4262fa20c384c9882264c6d19c93a7ae054f058035fb2e0ee47882e35d2586",
    4: "40cf3cd53174c81b933f01e7f9bd47fae2c7e6ca7c1a47b5727826b9907b0231",
}
MAX = 16384


def doc(*lines: str) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def too_large() -> bytes:
    """A document valid but for its size: MAX + 1 bytes, padded with 'note' lines."""
    data = bytearray(EXAMPLE)
    while len(data) < MAX + 1:
        room = MAX + 1 - len(data)
        data += b"note " + b"x" * max(1, min(58, room - 6)) + b"\n"
    assert len(data) == MAX + 1, len(data)
    return bytes(data)


EXAMPLE = doc(VERSION, f"signatory {ORIGIN} {IDS[1]}")
SEVERAL = doc(
    VERSION,
    f"signatory {ORIGIN} {IDS[1]}",
    "contact https://example.org/security.txt",
    f"signatory {ORIGIN} {IDS[2]}",
    f"signatory {OTHER} {IDS[3]}",
)
LONG = doc(
    VERSION, *(f"signatory log{i}.example.org/a-rather-long-origin {IDS[1]}" for i in range(4))
)

MATCHES = [
    ("example-org.txt", ORIGIN, IDS[1], "confirmed", "the id is named for this log"),
    ("example-org.txt", ORIGIN, IDS[4], "mismatch", "another id is named for this log: impostor"),
    ("example-org.txt", OTHER, IDS[1], "missing", "the id is named for another log only"),
    ("several.txt", ORIGIN, IDS[2], "confirmed", "one of two ids for this log"),
    ("several.txt", OTHER, IDS[3], "confirmed", "the other log's id"),
    ("several.txt", OTHER, IDS[1], "mismatch", "named for this log, but not for the other"),
    ("several.txt", "ledger.example.org/third", IDS[1], "missing", "no line for this log"),
]

GOOD_LINE = f"signatory {ORIGIN} {IDS[1]}"


def mutations() -> list[dict[str, object]]:
    m: list[tuple[str, str, bytes, str, int]] = [
        ("empty", "no bytes at all", b"", "malformed_domain_proof", 1),
        ("no-final-lf", "the last line has no LF", EXAMPLE[:-1], "malformed_domain_proof", 2),
        ("crlf", "CR LF line ends", EXAMPLE.replace(b"\n", b"\r\n"), "malformed_domain_proof", 1),
        (
            "bom",
            "a UTF-8 byte-order mark first",
            b"\xef\xbb\xbf" + EXAMPLE,
            "malformed_domain_proof",
            1,
        ),
        (
            "nul",
            "a NUL byte in a line",
            doc(VERSION, GOOD_LINE + "\0"),
            "malformed_domain_proof",
            2,
        ),
        (
            "tab",
            "TAB between the words",
            doc(VERSION, GOOD_LINE.replace(" ", "\t")),
            "malformed_domain_proof",
            2,
        ),
        (
            "utf8-other-line",
            "UTF-8 in a line of an unknown keyword",
            doc(VERSION, GOOD_LINE, "contact caf\u00e9"),
            "malformed_domain_proof",
            3,
        ),
        (
            "version-2",
            "a later version",
            doc("endorsement-ledger/v2 domain", GOOD_LINE),
            "unsupported_domain_proof_version",
            1,
        ),
        (
            "record-header",
            "a record's header instead",
            doc("endorsement-ledger/v1 register", GOOD_LINE),
            "malformed_domain_proof",
            1,
        ),
        ("no-header", "the signatory line alone", doc(GOOD_LINE), "malformed_domain_proof", 1),
        (
            "header-trailing-space",
            "a space after the version line",
            doc(VERSION + " ", GOOD_LINE),
            "malformed_domain_proof",
            1,
        ),
        (
            "uppercase-id",
            "the id in uppercase hex",
            doc(
                VERSION,
                GOOD_LINE.upper()
                .replace("SIGNATORY", "signatory")
                .replace("LEDGER.EXAMPLE.ORG/PARIS-CALL", ORIGIN),
            ),
            "malformed_domain_proof",
            2,
        ),
        ("short-id", "63 hex digits", doc(VERSION, GOOD_LINE[:-1]), "malformed_domain_proof", 2),
        ("long-id", "65 hex digits", doc(VERSION, GOOD_LINE + "0"), "malformed_domain_proof", 2),
        (
            "origin-plus",
            "an origin with '+'",
            doc(VERSION, f"signatory {ORIGIN}+1 {IDS[1]}"),
            "malformed_domain_proof",
            2,
        ),
        (
            "origin-too-long",
            "an origin of 256 bytes",
            doc(VERSION, f"signatory {'a' * 256} {IDS[1]}"),
            "malformed_domain_proof",
            2,
        ),
        (
            "two-spaces",
            "two spaces between origin and id",
            doc(VERSION, f"signatory {ORIGIN}  {IDS[1]}"),
            "malformed_domain_proof",
            2,
        ),
        (
            "trailing-space",
            "a space at the end of a signatory line",
            doc(VERSION, GOOD_LINE + " "),
            "malformed_domain_proof",
            2,
        ),
        (
            "no-id",
            "an origin and no id",
            doc(VERSION, f"signatory {ORIGIN}"),
            "malformed_domain_proof",
            2,
        ),
        (
            "extra-word",
            "a third word on a signatory line",
            doc(VERSION, GOOD_LINE + " x"),
            "malformed_domain_proof",
            2,
        ),
        (
            "bare-keyword",
            "'signatory' alone",
            doc(VERSION, "signatory"),
            "malformed_domain_proof",
            2,
        ),
        (
            "empty-line",
            "an empty line between lines",
            doc(VERSION, "", GOOD_LINE),
            "malformed_domain_proof",
            2,
        ),
        (
            "duplicate",
            "the same signatory line twice",
            doc(VERSION, GOOD_LINE, GOOD_LINE),
            "malformed_domain_proof",
            3,
        ),
        (
            "keyword-uppercase",
            "an unknown keyword in uppercase",
            doc(VERSION, GOOD_LINE, "Contact x"),
            "malformed_domain_proof",
            3,
        ),
        (
            "keyword-digit-first",
            "an unknown keyword beginning with a digit",
            doc(VERSION, "1contact x"),
            "malformed_domain_proof",
            2,
        ),
        (
            "keyword-too-long",
            "an unknown keyword of 33 characters",
            doc(VERSION, "a" * 33 + " x"),
            "malformed_domain_proof",
            2,
        ),
        (
            "other-trailing-space",
            "a space at the end of an unknown line",
            doc(VERSION, "contact x "),
            "malformed_domain_proof",
            2,
        ),
        (
            "leading-space",
            "a line beginning with a space",
            doc(VERSION, " " + GOOD_LINE),
            "malformed_domain_proof",
            2,
        ),
        ("too-large", f"{MAX + 1} bytes", too_large(), "domain_proof_too_large", 1),
    ]
    out = []
    for name, description, data, code, line in m:
        out.append(
            {
                "name": name,
                "description": description,
                "code": code,
                "line": line,
                "data_b64": base64.b64encode(data).decode("ascii"),
            }
        )
    return out


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "example-org.txt").write_bytes(EXAMPLE)
    (out / "several.txt").write_bytes(SEVERAL)
    (out / "long.txt").write_bytes(LONG)
    matches = [
        {"proof": p, "origin": o, "signatory": s, "domain": "example.org", "verdict": v, "why": w}
        for p, o, s, v, w in MATCHES
    ]
    strings = [LONG[i : i + 255].decode("ascii") for i in range(0, len(LONG), 255)]
    files = {
        "matches.json": matches,
        "txt.json": {"proof": "long.txt", "strings": strings},
        "mutations.json": mutations(),
    }
    for name, value in files.items():
        (out / name).write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
