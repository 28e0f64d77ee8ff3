"""Generate the record and entry test vectors of docs/spec.md ("Worked examples").

    python tests/vectors/records/generate.py [OUTPUT_DIR]

This script deliberately does NOT use ``ledger``: it writes every record by hand
from the spec's byte layout, signs with pyca/cryptography, and hashes with
hashlib, so that the vectors check ``ledger.core.records`` and ``ledger.core.entry``
against a second, independent reading of the spec. Ed25519 signatures are
deterministic, so running it again writes identical bytes
(tests/test_spec_vectors.py checks that the committed files are its output).

Keys: the Ed25519 private key seed of example key ``i`` is
SHA-256("endorsement-ledger example key <i>"); the log key's seed is
SHA-256("endorsement-ledger example log key"). These keys are public: never use
them for anything but tests.

Outputs (in OUTPUT_DIR, default: this directory):
  *.txt              the records, one file each, and entry-4.txt, checkpoint.txt
  examples.json      keys, ids, record ids, the example log's entries and leaf hashes
  mutations.json     named invalid variants, each rejected with FormatError or SignatureError
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ORIGIN = "ledger.example.org/paris-call"
V = "endorsement-ledger/v1"
L = 2**252 + 27742317777372353535851937790883648493  # order of the Ed25519 base point


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


class Key:
    def __init__(self, label: str) -> None:
        self.seed = sha256(label.encode())
        self.priv = Ed25519PrivateKey.from_private_bytes(self.seed)
        self.pub = self.priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.id = sha256(self.pub)  # signatory id when registered with this key

    def sign(self, msg: bytes) -> bytes:
        return self.priv.sign(msg)


KEYS = {i: Key(f"endorsement-ledger example key {i}") for i in (1, 2, 3, 4)}
LOG_KEY = Key("endorsement-ledger example log key")


def body(type_: str, *lines: str) -> bytes:
    return (f"{V} {type_}\n" + "".join(line + "\n" for line in lines)).encode("utf-8")


def sig_line(pub: bytes, sig: bytes) -> bytes:
    return f"sig {b64(pub)} {b64(sig)}\n".encode("ascii")


def record(b: bytes, *signers: Key) -> bytes:
    return b + b"\n" + b"".join(sig_line(k.pub, k.sign(b)) for k in signers)


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1 Merkle Tree Hash over leaf hashes."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def entry(index: int, prev: bytes, time_ms: int, rec: bytes) -> bytes:
    head = f"{V} entry\nindex {index}\nprev {prev.hex()}\ntime {time_ms}\n\n"
    return head.encode("ascii") + rec


K1, K2, K3, K4 = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
STATEMENT_TEXT = (
    "We call on every institution that collects endorsements to publish them in\n"
    "an append-only, publicly verifiable log, so that anyone can count them.\n"
    "\n"
    "Full text: https://example.org/call-for-verifiable-endorsements.pdf\n"
    "SHA-256: " + sha256(b"example document").hex() + "\n"
)

BODIES: dict[str, bytes] = {
    "registration-1": body(
        "register",
        f"log {ORIGIN}",
        "signed_at 1767225600",
        f"key {b64(K1.pub)}",
        "name Open Example Foundation",
        "kind civil-society",
        "country NL",
        "domain example.org",
    ),
    "registration-2": body(
        "register",
        f"log {ORIGIN}",
        "signed_at 1767225900",
        f"key {b64(K2.pub)}",
        "name Café Exemple SARL",
        "kind company",
        "country FR",
        "domain xn--caf-dma.example",
    ),
    "registration-3": body(
        "register",
        f"log {ORIGIN}",
        "signed_at 1767226200",
        f"key {b64(K3.pub)}",
        "name Ada Example",
        "kind individual",
    ),
    "statement": body(
        "statement",
        f"log {ORIGIN}",
        "signed_at 1767229200",
        "title Call for Verifiable Endorsements",
        f"author {K1.id.hex()}",
        f"author {K2.id.hex()}",
        f"text {b64(STATEMENT_TEXT.encode())}",
    ),
}
STATEMENT_ID = sha256(BODIES["statement"])
BODIES |= {
    "endorsement": body(
        "endorse",
        f"log {ORIGIN}",
        "signed_at 1767232800",
        f"signatory {K3.id.hex()}",
        f"statement {STATEMENT_ID.hex()}",
        "comment Signed on behalf of myself only.",
    ),
    "withdrawal": body(
        "withdraw",
        f"log {ORIGIN}",
        "signed_at 1767240000",
        f"signatory {K3.id.hex()}",
        f"statement {STATEMENT_ID.hex()}",
    ),
    "rotation": body(
        "rotate",
        f"log {ORIGIN}",
        "signed_at 1767243600",
        f"signatory {K1.id.hex()}",
        f"new_key {b64(K4.pub)}",
    ),
    "revocation": body(
        "revoke",
        f"log {ORIGIN}",
        "signed_at 1767243700",
        f"signatory {K1.id.hex()}",
        f"key {b64(K1.pub)}",
        "reason Laptop stolen on 2026-01-01; key rotated first.",
    ),
}
SIGNERS: dict[str, tuple[Key, ...]] = {
    "registration-1": (K1,),
    "registration-2": (K2,),
    "registration-3": (K3,),
    "statement": (K1, K2),
    "endorsement": (K3,),
    "withdrawal": (K3,),
    "rotation": (K1, K4),
    "revocation": (K4,),  # the successor key revokes the key it replaced
}
# The example log: records in this order, with these integration times (ms).
LOG = [
    ("registration-1", 1767225612345),
    ("registration-2", 1767225901000),
    ("registration-3", 1767226200500),
    ("statement", 1767229260000),
    ("endorsement", 1767232801234),
    ("withdrawal", 1767240000999),
    ("rotation", 1767243600100),
    ("revocation", 1767243700200),
]


def note_signature(name: str, key: Key, text: bytes) -> bytes:
    """A C2SP signed-note Ed25519 signature line."""
    key_id = sha256(name.encode() + b"\n\x01" + key.pub)[:4]
    return f"\u2014 {name} {b64(key_id + key.sign(text))}\n".encode()


def vkey(name: str, key: Key) -> str:
    key_id = sha256(name.encode() + b"\n\x01" + key.pub)[:4]
    encoded = b64(b"\x01" + key.pub)
    return f"{name}+{key_id.hex()}+{encoded}"


# --- mutations --------------------------------------------------------------------------


def flip_bit_b64(line_prefix: bytes, data: bytes, which: int, byte: int = 10) -> bytes:
    """Flip one bit of the base64 field ``which`` of the first line starting with prefix."""
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(line_prefix):
            parts = line.split(b" ")
            raw = bytearray(base64.b64decode(parts[which]))
            raw[byte] ^= 0x01
            parts[which] = base64.b64encode(bytes(raw))
            lines[i] = b" ".join(parts)
            return b"\n".join(lines)
    raise AssertionError(line_prefix)


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1, old
    return data.replace(old, new, 1)


def non_canonical_b64(s: str) -> str:
    """Same bytes, but with non-zero padding bits: decodes, yet is not canonical."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    stripped = s.rstrip("=")
    last = alphabet.index(stripped[-1])
    return stripped[:-1] + alphabet[last | 1] + s[len(stripped) :]


def mutations(records: dict[str, bytes], entries: list[bytes]) -> list[dict[str, str]]:
    reg1, stmt, end = records["registration-1"], records["statement"], records["endorsement"]
    out: list[dict[str, str]] = []

    def add(name: str, base: str, data: bytes, error: str, stage: str, why: str) -> None:
        out.append(
            {
                "name": name,
                "base": base,
                "stage": stage,  # parse_record / parse_entry raise, or verify_signatures does
                "error": error,
                "description": why,
                "data_b64": b64(data),
            }
        )

    def resign(b: bytes, *signers: Key) -> bytes:
        return record(b, *signers)

    # Signatures and keys.
    add(
        "sig-bit-flip",
        "endorsement",
        flip_bit_b64(b"sig ", end, 2),
        "SignatureError",
        "verify",
        "one bit of the signature flipped",
    )
    add(
        "body-changed-after-signing",
        "endorsement",
        replace_once(end, b"myself only.", b"myself only!"),
        "SignatureError",
        "verify",
        "the comment was edited after the record was signed",
    )
    add(
        "wrong-signer-register",
        "registration-1",
        resign(BODIES["registration-1"], K2),
        "SignatureError",
        "verify",
        "a valid signature, but by key 2: a registration must be signed by its key",
    )
    add(
        "rotation-second-sig-not-new-key",
        "rotation",
        resign(BODIES["rotation"], K1, K3),
        "SignatureError",
        "verify",
        "the second signature of a rotation must be by new_key",
    )
    add(
        "same-key-signs-twice",
        "statement",
        resign(BODIES["statement"], K1, K1),
        "SignatureError",
        "verify",
        "two signatures by one key",
    )
    add(
        "missing-signature",
        "endorsement",
        BODIES["endorsement"] + b"\n",
        "FormatError",
        "parse",
        "a complete endorsement needs one signature (this is a draft)",
    )
    add(
        "missing-second-author-signature",
        "statement",
        resign(BODIES["statement"], K1),
        "FormatError",
        "parse",
        "a statement needs one signature per author",
    )
    add(
        "extra-signature",
        "endorsement",
        end + sig_line(K1.pub, K1.sign(BODIES["endorsement"])),
        "FormatError",
        "parse",
        "more signatures than the type requires",
    )
    # S + L: the same signature with a non-reduced scalar (malleability).
    sig = K3.sign(BODIES["endorsement"])
    s_big = (int.from_bytes(sig[32:], "little") + L).to_bytes(32, "little")
    add(
        "signature-s-not-reduced",
        "endorsement",
        BODIES["endorsement"] + b"\n" + sig_line(K3.pub, sig[:32] + s_big),
        "SignatureError",
        "verify",
        "S >= L: rejected by the acceptance rule (RFC 8032 requires S < L)",
    )
    identity = b"\x01" + bytes(31)
    weak_body = replace_once(BODIES["registration-1"], b64(K1.pub).encode(), b64(identity).encode())
    add(
        "identity-key-register",
        "registration-1",
        weak_body + b"\n" + sig_line(identity, identity + bytes(32)),
        "SignatureError",
        "verify",
        "the identity point as key, R = identity, S = 0: valid for every message under the "
        "bare RFC 8032 equation; rejected because the key has small order",
    )

    # Text layout.
    add(
        "crlf",
        "endorsement",
        end.replace(b"\n", b"\r\n"),
        "FormatError",
        "parse",
        "CRLF line endings",
    )
    add(
        "missing-final-newline",
        "endorsement",
        end[:-1],
        "FormatError",
        "parse",
        "the last signature line has no newline",
    )
    add(
        "trailing-bytes",
        "endorsement",
        end + b"x",
        "FormatError",
        "parse",
        "a byte after the last newline",
    )
    add(
        "trailing-empty-line",
        "endorsement",
        end + b"\n",
        "FormatError",
        "parse",
        "an empty line after the signatures",
    )
    add(
        "no-empty-line",
        "endorsement",
        end.replace(b"\n\nsig ", b"\nsig "),
        "FormatError",
        "parse",
        "no empty line between body and signatures",
    )
    add(
        "utf8-bom",
        "endorsement",
        b"\xef\xbb\xbf" + end,
        "FormatError",
        "parse",
        "a byte-order mark before the header",
    )
    add(
        "unknown-version",
        "endorsement",
        replace_once(end, b"/v1 ", b"/v2 "),
        "FormatError",
        "parse",
        "header names format version v2",
    )
    add(
        "unknown-type",
        "endorsement",
        replace_once(end, b"v1 endorse\n", b"v1 support\n"),
        "FormatError",
        "parse",
        "unknown record type",
    )
    add(
        "swapped-field-order",
        "registration-1",
        replace_once(
            reg1,
            b"name Open Example Foundation\nkind civil-society\n",
            b"kind civil-society\nname Open Example Foundation\n",
        ),
        "FormatError",
        "parse",
        "name and kind swapped",
    )
    add(
        "repeated-key",
        "registration-1",
        replace_once(
            reg1, b"signed_at 1767225600\n", b"signed_at 1767225600\nsigned_at 1767225600\n"
        ),
        "FormatError",
        "parse",
        "signed_at twice",
    )
    add(
        "unknown-key",
        "endorsement",
        replace_once(end, b"comment ", b"note "),
        "FormatError",
        "parse",
        "a key the endorse type does not have",
    )
    add(
        "missing-key",
        "registration-1",
        replace_once(reg1, b"kind civil-society\n", b""),
        "FormatError",
        "parse",
        "a required key is absent",
    )
    add(
        "double-space",
        "registration-1",
        replace_once(reg1, b"name Open", b"name  Open"),
        "FormatError",
        "parse",
        "value starts with a space",
    )

    # Values.
    add(
        "signed-at-leading-zero",
        "endorsement",
        replace_once(end, b"signed_at 1", b"signed_at 01"),
        "FormatError",
        "parse",
        "a number with a leading zero",
    )
    add(
        "signed-at-plus",
        "endorsement",
        replace_once(end, b"signed_at 1", b"signed_at +1"),
        "FormatError",
        "parse",
        "a number with a sign",
    )
    k = b64(K1.pub)
    add(
        "non-canonical-base64-key",
        "registration-1",
        replace_once(reg1, f"key {k}".encode(), f"key {non_canonical_b64(k)}".encode()),
        "FormatError",
        "parse",
        "key in base64 with non-zero padding bits",
    )
    sig_b64 = end.split(b"\n")[-2].split(b" ")[2].decode()
    add(
        "non-canonical-base64-signature",
        "endorsement",
        replace_once(end, sig_b64.encode(), non_canonical_b64(sig_b64).encode()),
        "FormatError",
        "parse",
        "signature in base64 with non-zero padding bits",
    )
    add(
        "unpadded-base64-key",
        "registration-1",
        replace_once(reg1, f"key {k}".encode(), f"key {k.rstrip('=')}".encode()),
        "FormatError",
        "parse",
        "key in base64 without padding",
    )
    add(
        "uppercase-hex-id",
        "endorsement",
        replace_once(end, K3.id.hex().encode(), K3.id.hex().upper().encode()),
        "FormatError",
        "parse",
        "signatory id in uppercase hex",
    )
    add(
        "short-key",
        "registration-1",
        replace_once(reg1, f"key {k}".encode(), f"key {b64(K1.pub[:31])}".encode()),
        "FormatError",
        "parse",
        "a 31-byte key",
    )
    add(
        "duplicated-author",
        "statement",
        replace_once(stmt, f"author {K2.id.hex()}".encode(), f"author {K1.id.hex()}".encode()),
        "FormatError",
        "parse",
        "one author listed twice",
    )
    add(
        "name-not-nfc",
        "registration-2",
        replace_once(records["registration-2"], "Café".encode(), "Cafe\u0301".encode()),
        "FormatError",
        "parse",
        "name in decomposed form (NFD)",
    )
    add(
        "name-trailing-space",
        "registration-1",
        replace_once(reg1, b"Foundation\n", b"Foundation \n"),
        "FormatError",
        "parse",
        "name ends with a space",
    )
    add(
        "name-c1-control",
        "registration-1",
        replace_once(reg1, b"Open Example", "Open\u0085Example".encode()),
        "FormatError",
        "parse",
        "a C1 control character (U+0085) in the name",
    )
    add(
        "name-tab",
        "registration-1",
        replace_once(reg1, b"Open Example", b"Open\tExample"),
        "FormatError",
        "parse",
        "a tab in the name",
    )
    add(
        "unknown-kind",
        "registration-1",
        replace_once(reg1, b"kind civil-society", b"kind ngo"),
        "FormatError",
        "parse",
        "a kind not in the list",
    )
    add(
        "country-lowercase",
        "registration-1",
        replace_once(reg1, b"country NL", b"country nl"),
        "FormatError",
        "parse",
        "country in lowercase",
    )
    add(
        "domain-uppercase",
        "registration-1",
        replace_once(reg1, b"domain example.org", b"domain Example.org"),
        "FormatError",
        "parse",
        "domain not in lowercase",
    )
    add(
        "domain-trailing-dot",
        "registration-1",
        replace_once(reg1, b"domain example.org", b"domain example.org."),
        "FormatError",
        "parse",
        "domain with a final dot",
    )
    add(
        "log-with-space",
        "endorsement",
        replace_once(end, ORIGIN.encode(), b"ledger.example.org paris-call"),
        "FormatError",
        "parse",
        "log origin with a space",
    )
    text_b64 = b64(STATEMENT_TEXT.encode())
    add(
        "statement-text-cr",
        "statement",
        replace_once(
            stmt, text_b64.encode(), b64(STATEMENT_TEXT.replace("\n", "\r\n").encode()).encode()
        ),
        "FormatError",
        "parse",
        "statement text with CR characters (inside the base64)",
    )
    add(
        "statement-text-non-canonical-base64",
        "statement",
        replace_once(stmt, text_b64.encode(), non_canonical_b64(text_b64).encode()),
        "FormatError",
        "parse",
        "statement text base64 with non-zero padding bits",
    )

    # Entries.
    e4 = entries[4]
    add(
        "entry-index-leading-zero",
        "entry-4",
        replace_once(e4, b"index 4", b"index 04"),
        "FormatError",
        "parse",
        "entry index with a leading zero",
    )
    add(
        "entry-prev-uppercase",
        "entry-4",
        replace_once(
            e4, leaf_hash(entries[3]).hex().encode(), leaf_hash(entries[3]).hex().upper().encode()
        ),
        "FormatError",
        "parse",
        "prev in uppercase hex",
    )
    add(
        "entry-0-nonzero-prev",
        "entry-0",
        replace_once(entries[0], b"prev " + b"0" * 64, b"prev " + b"0" * 63 + b"1"),
        "FormatError",
        "parse",
        "entry 0 must have prev = 64 zeros",
    )
    add(
        "entry-missing-empty-line",
        "entry-4",
        replace_once(e4, b"\n\nendorsement-ledger/v1 endorse", b"\nendorsement-ledger/v1 endorse"),
        "FormatError",
        "parse",
        "no empty line between entry header and record",
    )
    add(
        "entry-trailing-bytes",
        "entry-4",
        e4 + b"\n",
        "FormatError",
        "parse",
        "an empty line after the record",
    )
    add(
        "entry-draft-record",
        "entry-4",
        e4[: e4.index(b"\n\nsig ") + 2],
        "FormatError",
        "parse",
        "an entry holding a draft (no signature)",
    )
    add(
        "entry-time-missing",
        "entry-4",
        replace_once(e4, b"time 1767232801234\n", b""),
        "FormatError",
        "parse",
        "no time line",
    )
    return out


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    records = {name: record(b, *SIGNERS[name]) for name, b in BODIES.items()}
    entries: list[bytes] = []
    prev = bytes(32)
    for i, (name, time_ms) in enumerate(LOG):
        e = entry(i, prev, time_ms, records[name])
        entries.append(e)
        prev = leaf_hash(e)
    leaves = [leaf_hash(e) for e in entries]
    cp_text = f"{ORIGIN}\n{len(entries)}\n{b64(mth(leaves))}\n".encode()
    checkpoint = cp_text + b"\n" + note_signature(ORIGIN, LOG_KEY, cp_text)

    files = {f"{name}.txt": data for name, data in records.items()}
    files["entry-4.txt"] = entries[4]
    files["checkpoint.txt"] = checkpoint
    for fname, data in files.items():
        (out_dir / fname).write_bytes(data)

    examples = {
        "origin": ORIGIN,
        "log_vkey": vkey(ORIGIN, LOG_KEY),
        "log_key": {"seed_hex": LOG_KEY.seed.hex(), "public_key_b64": b64(LOG_KEY.pub)},
        "keys": {
            str(i): {
                "seed_label": f"endorsement-ledger example key {i}",
                "seed_hex": k.seed.hex(),
                "public_key_b64": b64(k.pub),
                "key_hash_hex": k.id.hex(),
            }
            for i, k in KEYS.items()
        },
        "records": {
            name: {
                "file": f"{name}.txt",
                "type": BODIES[name].split(b"\n")[0].decode().split(" ")[1],
                "body_size": len(BODIES[name]),
                "record_id_hex": sha256(BODIES[name]).hex(),
                "signers": [b64(k.pub) for k in SIGNERS[name]],
            }
            for name in records
        },
        "statement_text": STATEMENT_TEXT,
        "log": [
            {
                "index": i,
                "record": name,
                "time_ms": time_ms,
                "entry_b64": b64(entries[i]),
                "leaf_hash_hex": leaves[i].hex(),
            }
            for i, (name, time_ms) in enumerate(LOG)
        ],
        "entry_file": {"file": "entry-4.txt", "index": 4},
        "checkpoint": {
            "file": "checkpoint.txt",
            "size": len(entries),
            "root_hash_hex": mth(leaves).hex(),
        },
    }
    (out_dir / "examples.json").write_text(
        json.dumps(examples, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    muts = mutations(records, entries)
    (out_dir / "mutations.json").write_text(json.dumps(muts, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
