"""Public forms of an Ed25519 key: raw bytes and base64.

The other public forms have one implementation each, in the core:
:func:`ledger.core.ed25519.key_hash` (the signatory id) and
:func:`ledger.core.note.key_id`, :func:`ledger.core.note.make_vkey` and
:func:`ledger.core.note.check_key_name` (C2SP signed-note). They are, for reference:

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

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.core.encoding import b64encode
from ledger.core.errors import FormatError

__all__ = ["PUBLIC_KEY_LEN", "public_key_b64", "public_key_bytes"]

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
