"""Public forms of an Ed25519 key: raw bytes, base64, key hash, signed-note key ID and vkey.

* raw: the 32-byte encoding of RFC 8032, section 5.1.5; base64: standard,
  padded (44 characters);
* key hash: ``SHA-256(raw)`` (docs/spec.md, "Identities and keys"), the
  signatory id when written in hex;
* key ID and vkey, for signature type ``0x01`` (C2SP signed-note, "Ed25519
  signatures")::

      key ID = SHA-256(name || 0x0A || 0x01 || raw)[:4]
      vkey   = name "+" hex(key ID) "+" base64(0x01 || raw)

  The spec's example: the key ``AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k``
  (type byte and key) named ``example.com/foo`` has key ID ``530d903a``.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.core.ed25519 import key_hash
from ledger.core.encoding import b64encode
from ledger.core.errors import FormatError

__all__ = [
    "ED25519_ALG",
    "PUBLIC_KEY_LEN",
    "check_key_name",
    "key_hash",  # ledger.core.ed25519's, re-exported: SHA-256 of the raw 32-byte key
    "key_id",
    "make_vkey",
    "public_key_b64",
    "public_key_bytes",
]

ED25519_ALG = 0x01
PUBLIC_KEY_LEN = 32


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key of a private or public key object."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_pub(pub: bytes) -> None:
    if len(pub) != PUBLIC_KEY_LEN:
        raise FormatError(
            "an Ed25519 public key is 32 bytes", field="public_key", expected=32, found=len(pub)
        )


def public_key_b64(pub: bytes) -> str:
    """Standard padded base64 of the raw key, as written in records."""
    _check_pub(pub)
    return b64encode(pub)


def check_key_name(name: str) -> None:
    """A signed-note key name: non-empty, no Unicode space, no ``+``, no control character."""
    if not name:
        raise FormatError("a key name must not be empty", field="name")
    for ch in name:
        if ch == "+" or ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise FormatError(
                "a key name must not contain spaces, '+' or control characters",
                field="name",
                found=name[:100],
            )


def key_id(name: str, pub: bytes, alg: int = ED25519_ALG) -> bytes:
    """The 4-byte signed-note key ID of a named key."""
    check_key_name(name)
    _check_pub(pub)
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + pub).digest()[:4]


def make_vkey(name: str, pub: bytes) -> str:
    """The signed-note verifier key string of a named Ed25519 key."""
    return f"{name}+{key_id(name, pub).hex()}+{b64encode(bytes([ED25519_ALG]) + pub)}"
