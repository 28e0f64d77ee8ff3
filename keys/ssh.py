"""Importing an OpenSSH Ed25519 private key into our encrypted key file.

OpenSSH writes private keys in its own format (OpenSSH PROTOCOL.key), armoured
as ``-----BEGIN OPENSSH PRIVATE KEY-----``. Its unencrypted header is::

    "openssh-key-v1" 0x00
    string ciphername    ("none", or e.g. "aes256-ctr")
    string kdfname       ("none", or "bcrypt")
    string kdfoptions
    uint32 number of keys
    string public key    (itself: string key type, ...), once per key
    string private keys  (encrypted when ciphername is not "none")

where ``string`` is a uint32 big-endian length and that many bytes (RFC 4251,
section 5). We read the header ourselves, so that a key of another type is
rejected, and a missing passphrase or ``bcrypt`` package reported, before any
decryption; ``cryptography`` then decodes the key. A passphrase-protected key
needs the ``bcrypt`` package (OpenSSH's KDF), which ``cryptography`` imports
only if it is installed.
"""

from __future__ import annotations

import binascii
import importlib.util
import os
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys.errors import (
    KeyNotEncryptedError,
    MissingDependencyError,
    NotAKeyError,
    PassphraseRequiredError,
    UnsupportedKeyTypeError,
    WrongPassphraseError,
)
from keys.keyfile import StrPath, read_key_file, save_private_key
from keys.pkcs8 import DEFAULT_WORK_FACTOR
from keys.signer import Signer

_MAGIC = b"openssh-key-v1\x00"
_ARMOUR = re.compile(
    rb"-----BEGIN OPENSSH PRIVATE KEY-----\r?\n(.*?)-----END OPENSSH PRIVATE KEY-----",
    re.DOTALL,
)
ED25519_TYPE = "ssh-ed25519"


@dataclass(frozen=True)
class SshKeyInfo:
    """What the unencrypted header of an OpenSSH private key says."""

    key_type: str
    cipher: str
    kdf: str

    @property
    def encrypted(self) -> bool:
        return self.cipher != "none"


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self._data = data
        self._pos = 0
        self._source = source

    def take(self, n: int) -> bytes:
        if n > len(self._data) - self._pos:
            raise NotAKeyError(f"{self._source}: truncated OpenSSH private key")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())


def _name(raw: bytes, what: str, source: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise NotAKeyError(f"{source}: the {what} name is not ASCII") from None


def inspect_ssh_private_key(data: bytes, *, source: str = "OpenSSH key") -> SshKeyInfo:
    """Read key type, cipher and KDF from an OpenSSH private key without decrypting it."""
    m = _ARMOUR.search(data)
    if m is None:
        raise NotAKeyError(f"{source} is not an OpenSSH private key")
    try:
        blob = binascii.a2b_base64(b"".join(m.group(1).split()), strict_mode=True)
    except binascii.Error:
        raise NotAKeyError(f"{source}: the OpenSSH key is not valid base64") from None
    if not blob.startswith(_MAGIC):
        raise NotAKeyError(f"{source}: not an openssh-key-v1 private key")
    r = _Reader(blob[len(_MAGIC) :], source)
    cipher = _name(r.string(), "cipher", source)
    kdf = _name(r.string(), "KDF", source)
    r.string()  # kdfoptions
    count = r.uint32()
    if count != 1:
        raise NotAKeyError(f"{source} holds {count} keys; import a file with exactly one")
    key_type = _name(_Reader(r.string(), source).string(), "key type", source)
    return SshKeyInfo(key_type=key_type, cipher=cipher, kdf=kdf)


def _bcrypt_available() -> bool:
    return importlib.util.find_spec("bcrypt") is not None


def decode_ssh_private_key(
    data: bytes, passphrase: bytes | None, *, source: str = "OpenSSH key"
) -> Ed25519PrivateKey:
    """The Ed25519 key of an OpenSSH private key file's bytes."""
    passphrase = passphrase or None
    info = inspect_ssh_private_key(data, source=source)
    if info.key_type != ED25519_TYPE:
        hint = (
            " (its private half lives on a security key and cannot be exported)"
            if info.key_type.startswith("sk-")
            else ""
        )
        raise UnsupportedKeyTypeError(
            f"{source} is an {info.key_type} key{hint}; only {ED25519_TYPE} keys can be imported"
        )
    if info.encrypted:
        if passphrase is None:
            raise PassphraseRequiredError(f"{source} is passphrase-protected; give its passphrase")
        if not _bcrypt_available():
            raise MissingDependencyError(
                "reading a passphrase-protected OpenSSH key needs the 'bcrypt' package "
                "(pip install bcrypt), or remove its passphrase with ssh-keygen -p first"
            )
    elif passphrase is not None:
        raise KeyNotEncryptedError(
            f"{source} is not passphrase-protected, but a passphrase was given"
        )
    try:
        key = serialization.load_ssh_private_key(data, passphrase)
    except UnsupportedAlgorithm as e:
        if "bcrypt" in str(e):
            raise MissingDependencyError(
                "reading a passphrase-protected OpenSSH key needs the 'bcrypt' package"
            ) from None
        raise UnsupportedKeyTypeError(
            f"{source} uses cipher {info.cipher!r} or KDF {info.kdf!r}, which is not supported"
        ) from None
    except ValueError:
        if info.encrypted:
            raise WrongPassphraseError(
                f"wrong passphrase for {source} (or the file is damaged)"
            ) from None
        raise NotAKeyError(f"{source} is a damaged OpenSSH private key") from None
    if not isinstance(key, Ed25519PrivateKey):  # the header said ed25519; be sure
        raise UnsupportedKeyTypeError(f"{source} is not an {ED25519_TYPE} key")
    return key


def read_ssh_private_key(path: StrPath, passphrase: bytes | None) -> Ed25519PrivateKey:
    """Load the Ed25519 key of an OpenSSH private key file."""
    data = read_key_file(path)
    return decode_ssh_private_key(data, passphrase, source=os.fspath(path))


def ssh_key_is_encrypted(path: StrPath) -> bool:
    """Whether an OpenSSH key file is passphrase-protected (so a CLI asks only then)."""
    return inspect_ssh_private_key(read_key_file(path), source=os.fspath(path)).encrypted


def import_ssh_key(
    ssh_path: StrPath,
    out_path: StrPath,
    passphrase: bytes | None,
    *,
    ssh_passphrase: bytes | None = None,
    allow_unencrypted: bool = False,
    work_factor: int = DEFAULT_WORK_FACTOR,
) -> Signer:
    """Re-save an OpenSSH Ed25519 key as our key file at ``out_path``, encrypted with
    ``passphrase``; ``ssh_passphrase`` opens the OpenSSH file. Never overwrites."""
    key = read_ssh_private_key(ssh_path, ssh_passphrase)
    save_private_key(
        out_path, key, passphrase, allow_unencrypted=allow_unencrypted, work_factor=work_factor
    )
    return Signer(key)
