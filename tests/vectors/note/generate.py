"""Generate the signed-note, vkey and cosignature vectors (C2SP signed-note, tlog-cosignature).

    python tests/vectors/note/generate.py [OUTPUT_DIR]

This script deliberately does NOT use ``ledger``: it writes notes, signature
lines and vkeys by hand from the specs, signs with pyca/cryptography, and so
checks ``ledger.core.note`` against a second reading of c2sp.org/signed-note and
c2sp.org/tlog-cosignature. Ed25519 signing is deterministic, so running it again
writes identical bytes (tests/test_note.py checks that the committed file is its output).

Besides our own cases it carries, as data, the published examples: the
signed-note spec's vkey and note (example.com/foo), the notes of
golang.org/x/mod/sumdb/note's tests (PeterNeumann, EnochRoot), and the
tlog-cosignature spec's cosigned checkpoint (no key is published for it, so only
its framing can be checked).

Output: ``vectors.json``::

    {"vkeys": [{name, vkey, expected, description}],
     "notes": [{name, note | note_b64, vkeys, expected, verified, description}]}

``expected`` is ``accept`` or the error class (FormatError, TooLargeError,
SignatureError, UnknownKeyError); ``vkeys`` names entries of ``vkeys`` the
verifier trusts; ``verified`` lists the key names whose signatures verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DASH = "\u2014"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


class Key:
    def __init__(self, label: str) -> None:
        self.priv = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())
        self.pub = self.priv.public_key().public_bytes_raw()


def key_id(name: str, alg: int, pub: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + pub).digest()[:4]


def vkey(name: str, key: Key, alg: int = 1) -> str:
    return f"{name}+{key_id(name, alg, key.pub).hex()}+{b64(bytes([alg]) + key.pub)}"


def flip(raw: bytes, index: int) -> bytes:
    """``raw`` with the lowest bit of byte ``index`` flipped."""
    return raw[:index] + bytes([raw[index] ^ 1]) + raw[index + 1 :]


def sig_line(name: str, raw: bytes) -> str:
    return f"{DASH} {name} {b64(raw)}\n"


def sign_line(name: str, key: Key, text: str) -> str:
    return sig_line(name, key_id(name, 1, key.pub) + key.priv.sign(text.encode()))


def cosign_line(name: str, key: Key, text: str, timestamp: int) -> str:
    msg = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
    raw = key_id(name, 4, key.pub) + timestamp.to_bytes(8, "big") + key.priv.sign(msg)
    return sig_line(name, raw)


LOG = "ledger.example.org/log"
WITNESS = "witness.example.org/w1"
LOG_KEY = Key("note vectors log key")
OTHER_KEY = Key("note vectors other key")
WITNESS_KEY = Key("note vectors witness key")
TEXT = f"{LOG}\n42\n{b64(hashlib.sha256(b'root').digest())}\n"

# Published examples, used as data.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (  # c2sp.org/signed-note, verifier key example
    "This is an example message.\n\n"
    f"{DASH} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mF"
    "XmRKuwHjG1Yu72IneyaQM=\n"
)
GO_PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_PETER_SIG = (
    f"{DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdn"
    "gotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = (
    f"{DASH} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnW"
    "Lox33WWd1RvMc+QQ=\n"
)
COSIGNATURE_SPEC_NOTE = (  # c2sp.org/tlog-cosignature, the example cosigned checkpoint
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    f"{DASH} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u"
    "5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    f"{DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlr"
    "DJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def vkey_vectors() -> list[dict[str, str]]:
    good = vkey(LOG, LOG_KEY)
    name, hex_id, key64 = good.split("+", 2)
    raw = base64.b64decode(key64)
    identity = bytes([1]) + bytes(31)
    out = [
        ("log", good, "accept", "an Ed25519 vkey (type 0x01)"),
        ("other", vkey(LOG, OTHER_KEY), "accept", "another key under the log's name"),
        ("witness", vkey(WITNESS, WITNESS_KEY, 4), "accept", "an Ed25519 cosigner vkey (0x04)"),
        ("spec-example", SPEC_VKEY, "accept", "c2sp.org/signed-note's example vkey"),
        ("go-peter", GO_PETER_VKEY, "accept", "golang.org/x/mod sumdb/note test key"),
        ("go-enoch", GO_ENOCH_VKEY, "accept", "golang.org/x/mod sumdb/note test key"),
        (
            "uppercase-key-id",
            f"{name}+{hex_id.upper()}+{key64}",
            "FormatError",
            "key ID in uppercase hex",
        ),
        (
            "wrong-key-id",
            f"{name}+{(int(hex_id, 16) ^ 1):08x}+{key64}",
            "FormatError",
            "key ID does not match the name and key",
        ),
        ("short-key-id", f"{name}+{hex_id[:7]}+{key64}", "FormatError", "7 hex digits"),
        ("renamed", f"{LOG}x+{hex_id}+{key64}", "FormatError", "another name with the same key ID"),
        (
            "name-with-space",
            f"a b+{key_id('a b', 1, LOG_KEY.pub).hex()}+{key64}",
            "FormatError",
            "a key name with a space",
        ),
        (
            "empty-name",
            f"+{key_id('', 1, LOG_KEY.pub).hex()}+{key64}",
            "FormatError",
            "an empty key name",
        ),
        (
            "unknown-type",
            f"{name}+{key_id(name, 2, LOG_KEY.pub).hex()}+{b64(bytes([2]) + LOG_KEY.pub)}",
            "FormatError",
            "signature type 0x02 (ECDSA) is not supported",
        ),
        (
            "short-key",
            f"{name}+{key_id(name, 1, LOG_KEY.pub[:31]).hex()}+{b64(raw[:32])}",
            "FormatError",
            "a 31-byte key",
        ),
        (
            "long-key",
            f"{name}+{key_id(name, 1, LOG_KEY.pub + b'x').hex()}+{b64(raw + b'x')}",
            "FormatError",
            "a 33-byte key",
        ),
        ("missing-key", f"{name}+{hex_id}", "FormatError", "no key part"),
        ("extra-padding", f"{name}+{hex_id}+{key64}==", "FormatError", "padding after 33 bytes"),
        (
            "identity-key",
            f"{name}+{key_id(name, 1, identity).hex()}+{b64(bytes([1]) + identity)}",
            "FormatError",
            "the identity point fails the Ed25519 acceptance rule",
        ),
        ("trailing-space", good + " ", "FormatError", "a trailing space"),
    ]
    assert (
        base64.b64decode(out[16][1].split("+", 2)[2]) == raw
    )  # the non-canonical spelling decodes
    return [{"name": n, "vkey": v, "expected": e, "description": d} for n, v, e, d in out]


def note_vectors() -> list[dict[str, object]]:
    log_sig = sign_line(LOG, LOG_KEY, TEXT)
    other_sig = sign_line(LOG, OTHER_KEY, TEXT)
    cosig = cosign_line(WITNESS, WITNESS_KEY, TEXT, 1_767_225_600)
    good = TEXT + "\n" + log_sig
    raw_log = base64.b64decode(log_sig.split(" ")[2])
    unknown = sign_line("unknown.example/key", OTHER_KEY, TEXT)
    bad_log_sig = sig_line(LOG, flip(raw_log, 10))
    wrong_name_same_id = sig_line(LOG + "2", raw_log)
    other_id = sig_line(LOG, key_id(LOG, 1, OTHER_KEY.pub) + raw_log[4:])
    cosig_raw = base64.b64decode(cosig.split(" ")[2])

    def n(
        name: str,
        note: str | bytes,
        vkeys: list[str],
        expected: str,
        description: str,
        verified: tuple[str, ...] = (),
    ) -> dict[str, object]:
        v: dict[str, object] = {"name": name}
        if isinstance(note, bytes):
            v["note_b64"] = b64(note)
        else:
            v["note"] = note
        v.update(vkeys=vkeys, expected=expected, verified=list(verified), description=description)
        return v

    sig_b64 = log_sig.split(" ")[2][:-1]
    out = [
        n("valid", good, ["log"], "accept", "signed by the log key", (LOG,)),
        n(
            "spec-example",
            SPEC_NOTE,
            ["spec-example"],
            "accept",
            "c2sp.org/signed-note's example note",
            ("example.com/foo",),
        ),
        n(
            "go-two-signatures-one-known",
            GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG,
            ["go-peter"],
            "accept",
            "golang.org/x/mod: EnochRoot's signature is unknown and ignored",
            ("PeterNeumann",),
        ),
        n(
            "go-two-signatures-both-known",
            GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG,
            ["go-peter", "go-enoch"],
            "accept",
            "golang.org/x/mod: both verify",
            ("PeterNeumann", "EnochRoot"),
        ),
        n(
            "go-none-known",
            GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG,
            ["log"],
            "UnknownKeyError",
            "no signature by a trusted key",
        ),
        n(
            "with-cosignature",
            good + cosig,
            ["log"],
            "accept",
            "a cosignature by a key the verifier does not know is ignored",
            (LOG,),
        ),
        n(
            "cosignature-verified",
            good + cosig,
            ["log", "witness"],
            "accept",
            "a cosignature verified with the witness's 0x04 key",
            (LOG, WITNESS),
        ),
        n(
            "cosignature-only",
            TEXT + "\n" + cosig,
            ["witness"],
            "accept",
            "a note opened with a cosigner key alone",
            (WITNESS,),
        ),
        n(
            "cosignature-bad",
            good + sig_line(WITNESS, flip(cosig_raw, 20)),
            ["log", "witness"],
            "SignatureError",
            "one bit of the known witness's cosignature flipped",
        ),
        n(
            "cosignature-short",
            good + sig_line(WITNESS, cosig_raw[:4] + cosig_raw[12:]),
            ["log", "witness"],
            "SignatureError",
            "a known witness's cosignature without its timestamp",
        ),
        n(
            "cosignature-timestamp-overflow",
            good + sig_line(WITNESS, cosig_raw[:4] + b"\xff" * 8 + cosig_raw[12:]),
            ["log", "witness"],
            "SignatureError",
            "a cosignature timestamp above 2^63 - 1",
        ),
        n(
            "cosignature-wrong-time",
            good
            + sig_line(
                WITNESS, cosig_raw[:4] + (1_767_225_601).to_bytes(8, "big") + cosig_raw[12:]
            ),
            ["log", "witness"],
            "SignatureError",
            "the timestamp changed after cosigning",
        ),
        n(
            "cosignature-as-note-signature",
            good + sig_line(WITNESS, key_id(WITNESS, 1, WITNESS_KEY.pub) + cosig_raw[12:]),
            ["log", "witness"],
            "accept",
            "the cosignature's Ed25519 part under the 0x01 key ID: a key nobody trusts",
            (LOG,),
        ),
        n(
            "unknown-key-only",
            TEXT + "\n" + unknown,
            ["log"],
            "UnknownKeyError",
            "signed only by a key the verifier does not know",
        ),
        n(
            "known-key-bad-signature",
            TEXT + "\n" + bad_log_sig,
            ["log"],
            "SignatureError",
            "one bit of the log's signature flipped",
        ),
        n(
            "bad-known-after-good",
            good + bad_log_sig,
            ["log"],
            "SignatureError",
            "a valid and an invalid signature by the same known key: the note is rejected",
        ),
        n(
            "unknown-then-known",
            TEXT + "\n" + unknown + log_sig,
            ["log"],
            "accept",
            "an unknown signature before the known one",
            (LOG,),
        ),
        n(
            "same-id-other-name",
            TEXT + "\n" + wrong_name_same_id + log_sig,
            ["log"],
            "accept",
            "a signature with the log's key ID under another name is someone else's: ignored",
            (LOG,),
        ),
        n(
            "same-name-other-id",
            TEXT + "\n" + other_id + log_sig,
            ["log"],
            "accept",
            "a signature with the log's name under another key ID is someone else's: ignored",
            (LOG,),
        ),
        n(
            "two-keys-one-name",
            TEXT + "\n" + log_sig + other_sig,
            ["log", "other"],
            "accept",
            "two keys share a name; key IDs tell them apart",
            (LOG, LOG),
        ),
        n(
            "duplicate-signature",
            good + log_sig,
            ["log"],
            "accept",
            "the same valid signature twice",
            (LOG, LOG),
        ),
        n(
            "text-with-empty-lines",
            "a\n\nb\n\n" + "\n" + sign_line(LOG, LOG_KEY, "a\n\nb\n\n"),
            ["log"],
            "accept",
            "the last empty line separates text and signatures",
            (LOG,),
        ),
        n(
            "sixteen-signatures",
            TEXT + "\n" + unknown * 15 + log_sig,
            ["log"],
            "accept",
            "16 signature lines: the spec's minimum",
            (LOG,),
        ),
        n(
            "hundred-signatures",
            TEXT + "\n" + unknown * 99 + log_sig,
            ["log"],
            "accept",
            "100 signature lines: our maximum",
            (LOG,),
        ),
        n(
            "too-many-signatures",
            TEXT + "\n" + unknown * 100 + log_sig,
            ["log"],
            "TooLargeError",
            "101 signature lines",
        ),
        # Malformations: each is a FormatError, never a skipped line.
        n("no-final-newline", good[:-1], ["log"], "FormatError", "the last line has no newline"),
        n(
            "no-empty-line",
            TEXT + log_sig,
            ["log"],
            "FormatError",
            "no empty line before the signatures",
        ),
        n("no-signatures", TEXT + "\n", ["log"], "FormatError", "an empty signature section"),
        n("text-only", TEXT, ["log"], "FormatError", "text without signatures"),
        n("empty", "", ["log"], "FormatError", "nothing"),
        n("crlf", good.replace("\n", "\r\n"), ["log"], "FormatError", "CRLF line endings"),
        n(
            "tab-in-text",
            "a\tb\n\n" + sign_line(LOG, LOG_KEY, "a\tb\n"),
            ["log"],
            "FormatError",
            "a tab in the text, signed",
        ),
        n(
            "nul-in-text",
            "a\x00b\n\n" + sign_line(LOG, LOG_KEY, "a\x00b\n"),
            ["log"],
            "FormatError",
            "a NUL in the text, signed",
        ),
        n("invalid-utf8", b"\xff" + good.encode()[1:], ["log"], "FormatError", "invalid UTF-8"),
        n(
            "hyphen-not-em-dash",
            TEXT + "\n" + log_sig.replace(DASH, "-", 1),
            ["log"],
            "FormatError",
            "an ASCII hyphen instead of U+2014",
        ),
        n(
            "en-dash",
            TEXT + "\n" + log_sig.replace(DASH, "\u2013", 1),
            ["log"],
            "FormatError",
            "U+2013 instead of U+2014",
        ),
        n(
            "no-space-after-dash",
            TEXT + "\n" + log_sig.replace(DASH + " ", DASH, 1),
            ["log"],
            "FormatError",
            "no space after the dash",
        ),
        n(
            "two-spaces-after-dash",
            TEXT + "\n" + log_sig.replace(DASH + " ", DASH + "  ", 1),
            ["log"],
            "FormatError",
            "two spaces after the dash: an empty name",
        ),
        n(
            "two-spaces-before-signature",
            TEXT + "\n" + log_sig.replace(f"{LOG} ", f"{LOG}  ", 1),
            ["log"],
            "FormatError",
            "two spaces between name and signature",
        ),
        n(
            "no-signature-after-name",
            TEXT + "\n" + f"{DASH} {LOG}\n",
            ["log"],
            "FormatError",
            "a name and no signature",
        ),
        n(
            "empty-signature",
            TEXT + "\n" + f"{DASH} {LOG} \n",
            ["log"],
            "FormatError",
            "a name and an empty signature",
        ),
        n(
            "name-with-plus",
            TEXT + "\n" + sig_line("a+b", raw_log) + log_sig,
            ["log"],
            "FormatError",
            "a '+' in a key name",
        ),
        n(
            "name-with-nbsp",
            TEXT + "\n" + sig_line("a\u00a0b", raw_log) + log_sig,
            ["log"],
            "FormatError",
            "U+00A0 (a Unicode space) in a key name",
        ),
        n(
            "name-with-ideographic-space",
            TEXT + "\n" + sig_line("a\u3000b", raw_log) + log_sig,
            ["log"],
            "FormatError",
            "U+3000 (a Unicode space) in a key name",
        ),
        n(
            "signature-too-short",
            TEXT + "\n" + sig_line(LOG, raw_log[:4]) + log_sig,
            ["log"],
            "FormatError",
            "a key ID and no signature bytes (4 bytes, fewer than 5)",
        ),
        n(
            "base64-non-canonical",
            TEXT + "\n" + log_sig.replace(sig_b64, sig_b64[:-2] + chr(ord(sig_b64[-2]) + 1) + "="),
            ["log"],
            "FormatError",
            "the log's signature in base64 with non-zero padding bits",
        ),
        n(
            "base64-no-padding",
            TEXT + "\n" + log_sig.replace(sig_b64, sig_b64.rstrip("=")),
            ["log"],
            "FormatError",
            "base64 without its padding",
        ),
        n(
            "base64-bad-character",
            TEXT + "\n" + log_sig.replace(sig_b64, "*" + sig_b64[1:]),
            ["log"],
            "FormatError",
            "a character outside the base64 alphabet",
        ),
        n(
            "base64-url-alphabet",
            TEXT
            + "\n"
            + sig_line(LOG, b"\xfb\xff" * 34).replace("+", "-").replace("/", "_")
            + log_sig,
            ["log"],
            "FormatError",
            "the URL-safe base64 alphabet",
        ),
        n(
            "trailing-line",
            good + "Unexpected line.\n",
            ["log"],
            "FormatError",
            "a line that is not a signature after the signatures",
        ),
        n(
            "empty-line-between-signatures",
            TEXT + "\n" + unknown + "\n" + log_sig,
            ["log"],
            "SignatureError",
            "an empty line between two signature lines: the text then ends with "
            "the first signature line, which the log's signature does not cover",
        ),
    ]
    return out


def render() -> bytes:
    doc = {
        "vkeys": vkey_vectors(),
        "notes": note_vectors(),
        "cosignature_spec_note": COSIGNATURE_SPEC_NOTE,
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    (out_dir / "vectors.json").write_bytes(render())


if __name__ == "__main__":
    main()
