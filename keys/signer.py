"""The signing key as the CLI and the log service hold it.

A :class:`Signer` wraps one Ed25519 private key (RFC 8032, PureEdDSA) and
exposes only what is public (raw key, key hash, vkey) plus ``sign``. For C2SP
signed notes it hands out a :class:`NoteSigner`: ``name``, 4-byte ``key_id``
(signed-note, "Ed25519 signatures") and ``sign(msg)``, the shape
``ledger.core.note.sign_note`` expects.

Neither class shows key material: their ``repr`` names the key hash and key
name only, and they refuse to be pickled or copied, so a private key does not
leak into a log line, a cache or a crash report by accident.
"""

from __future__ import annotations

from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys.export import public_key_bytes
from keys.keyfile import StrPath, generate_private_key, load_private_key, save_private_key
from keys.pkcs8 import DEFAULT_WORK_FACTOR
from ledger.core.ed25519 import key_hash
from ledger.core.encoding import b64encode
from ledger.core.errors import FormatError
from ledger.core.note import check_key_name, key_id, make_vkey

SEED_LEN = 32


class _NoCopy:
    __slots__ = ()

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds a private key and cannot be pickled")

    def __copy__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds a private key and cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds a private key and cannot be copied")


class NoteSigner(_NoCopy):
    """A named Ed25519 key signing C2SP signed notes (signature type 0x01)."""

    __slots__ = ("_key", "_key_id", "_name", "_public_key")

    def __init__(self, private_key: Ed25519PrivateKey, name: str) -> None:
        check_key_name(name)
        self._key = private_key
        self._name = name
        self._public_key = public_key_bytes(private_key)
        self._key_id = key_id(name, self._public_key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        """SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public_key

    @property
    def vkey(self) -> str:
        """The verifier key string to publish: ``<name>+<hex key ID>+<base64(0x01 || key)>``."""
        return make_vkey(self._name, self._public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of the note text (key ID not included)."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"NoteSigner(name={self._name!r}, key_id={self._key_id.hex()})"


class Signer(_NoCopy):
    """One Ed25519 signing key; ``name`` is an optional default signed-note key name."""

    __slots__ = ("_key", "_key_hash", "_name", "_public_key")

    def __init__(self, private_key: Ed25519PrivateKey, *, name: str | None = None) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("a Signer needs an Ed25519 private key")
        if name is not None:
            check_key_name(name)
        self._key = private_key
        self._name = name
        self._public_key = public_key_bytes(private_key)
        self._key_hash = key_hash(self._public_key)

    # --- constructors ---

    @classmethod
    def generate(cls, *, name: str | None = None) -> Signer:
        """A new random key."""
        return cls(generate_private_key(), name=name)

    @classmethod
    def from_seed(cls, seed: bytes, *, name: str | None = None) -> Signer:
        """The key of a 32-byte RFC 8032 seed: deterministic, for tests and examples only."""
        if len(seed) != SEED_LEN:
            raise FormatError(
                "an Ed25519 seed is 32 bytes", field="seed", expected=SEED_LEN, found=len(seed)
            )
        return cls(Ed25519PrivateKey.from_private_bytes(seed), name=name)

    @classmethod
    def load(
        cls,
        path: StrPath,
        passphrase: bytes | None,
        *,
        name: str | None = None,
        strict_permissions: bool = False,
    ) -> Signer:
        """Load a key file (see :func:`keys.keyfile.load_private_key`)."""
        key = load_private_key(path, passphrase, strict_permissions=strict_permissions)
        return cls(key, name=name)

    def save(
        self,
        path: StrPath,
        passphrase: bytes | None,
        *,
        allow_unencrypted: bool = False,
        work_factor: int = DEFAULT_WORK_FACTOR,
    ) -> None:
        """Write a new key file (see :func:`keys.keyfile.save_private_key`)."""
        save_private_key(
            path,
            self._key,
            passphrase,
            allow_unencrypted=allow_unencrypted,
            work_factor=work_factor,
        )

    # --- public parts ---

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self._public_key

    @property
    def public_key_b64(self) -> str:
        return b64encode(self._public_key)

    @property
    def key_hash(self) -> bytes:
        """SHA-256 of the public key: the signatory id of a key registered with it."""
        return self._key_hash

    def vkey(self, name: str | None = None) -> str:
        """The signed-note verifier key of this key under ``name`` (default: its own)."""
        return make_vkey(self._resolve_name(name), self._public_key)

    # --- signing ---

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)

    def note_signer(self, name: str | None = None) -> NoteSigner:
        """A signed-note signer for this key under ``name`` (default: its own name)."""
        return NoteSigner(self._key, self._resolve_name(name))

    def _resolve_name(self, name: str | None) -> str:
        if name is not None:
            return name
        if self._name is None:
            raise ValueError("this signer has no key name; pass one")
        return self._name

    def __repr__(self) -> str:
        named = f"name={self._name!r}, " if self._name is not None else ""
        return f"Signer({named}key_hash={self._key_hash.hex()})"
