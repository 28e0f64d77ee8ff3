"""Private key files: one Ed25519 key as PKCS#8 PEM, encrypted at rest.

Format: PKCS#8 (RFC 5958, section 2 and 3) in PEM (RFC 7468, sections 10 and 11):

* ``-----BEGIN ENCRYPTED PRIVATE KEY-----``: the default, PBES2 with scrypt
  (N = 2^17, r = 8, p = 1) and AES-256-CBC, written by :mod:`keys.pkcs8`;
* ``-----BEGIN PRIVATE KEY-----``: unencrypted, only on the explicit opt-in
  ``allow_unencrypted=True`` (tests, throwaway demos, and the log key of a server
  that must start unattended: see :mod:`keys.logkey`).

Writing never overwrites and never shows a half-written key: the key goes to a
temporary file created with ``O_CREAT | O_EXCL`` and mode 0600 in the target
directory, which is written and fsynced, then hard-linked to its final name
(atomic, and it fails if the name exists, so of two racing writers exactly one
wins), then the temporary name is removed and the directory fsynced. A crash
can leave a temporary ``.<name>.<random>.tmp`` (mode 0600) beside the key, never
a truncated key file. On a file system without hard links the key file itself
is created with ``O_EXCL`` and written in place.

Reading checks the open file (``fstat``, no race with a rename): it must be a
regular file of at most 64 KiB. A key file that its group or others may access
gets an :class:`InsecureKeyFileWarning`, or an :class:`InsecurePermissionsError`
with ``strict_permissions=True``. Errors name the file, never key bytes.
"""

from __future__ import annotations

import binascii
import os
import re
import stat
import warnings

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys.errors import (
    EmptyPassphraseError,
    InsecurePermissionsError,
    KeyFileError,
    KeyFileExistsError,
    KeyFileNotFoundError,
    KeyNotEncryptedError,
    NotAKeyError,
    PassphraseRequiredError,
    UnsupportedKeyTypeError,
    WrongPassphraseError,
)
from keys.pkcs8 import DEFAULT_WORK_FACTOR, encrypt_pkcs8
from ledger.durable import write_new

StrPath = str | os.PathLike[str]

MAX_KEY_FILE_SIZE = 64 * 1024
KEY_FILE_MODE = 0o600

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_ENCRYPTED = "ENCRYPTED PRIVATE KEY"
_PLAIN = "PRIVATE KEY"
_OTHER_PRIVATE = {
    "RSA PRIVATE KEY": "an RSA",
    "EC PRIVATE KEY": "an EC",
    "DSA PRIVATE KEY": "a DSA",
}


class InsecureKeyFileWarning(UserWarning):
    """A key file can be accessed by its group or by others."""


def generate_private_key() -> Ed25519PrivateKey:
    """A new Ed25519 key from the operating system's CSPRNG."""
    return Ed25519PrivateKey.generate()


# --- encoding -----------------------------------------------------------------------------


def encode_private_key(
    key: Ed25519PrivateKey,
    passphrase: bytes | None,
    *,
    allow_unencrypted: bool = False,
    work_factor: int = DEFAULT_WORK_FACTOR,
) -> bytes:
    """The PEM text of a key file: encrypted, or plain only if explicitly allowed."""
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError("only Ed25519 private keys are stored")
    if passphrase:
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return encrypt_pkcs8(der, passphrase, work_factor=work_factor)
    if not allow_unencrypted:
        raise EmptyPassphraseError(
            "refusing to store a private key without a passphrase "
            "(opt in explicitly to store it unencrypted)"
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_label(data: bytes, source: str) -> str:
    """The label of the one PEM block of a key file, rejecting anything else."""
    labels = _PEM_BEGIN.findall(data)
    if not labels:
        raise NotAKeyError(f"{source} is not a PEM key file")
    if len(labels) > 1:
        raise NotAKeyError(f"{source} holds {len(labels)} PEM blocks; a key file holds one")
    label: str = labels[0].decode("ascii")
    if label in (_ENCRYPTED, _PLAIN):
        return label
    if label == "OPENSSH PRIVATE KEY":
        raise NotAKeyError(
            f"{source} is an OpenSSH private key; import it into a key file first (keys.ssh)"
        )
    if label in _OTHER_PRIVATE:
        raise UnsupportedKeyTypeError(
            f"{source} holds {_OTHER_PRIVATE[label]} private key; only Ed25519 keys are supported"
        )
    raise NotAKeyError(f"{source} holds a PEM {label!r}, not a private key")


def _check_pem_body(data: bytes, label: str, source: str) -> None:
    """Reject damaged base64 here, so that a damaged file is not blamed on the passphrase."""
    m = re.search(
        rb"-----BEGIN " + label.encode() + rb"-----\r?\n(.*?)-----END " + label.encode() + b"-----",
        data,
        re.DOTALL,
    )
    if m is None:
        raise NotAKeyError(f"{source}: PEM block {label!r} is not terminated")
    try:
        binascii.a2b_base64(b"".join(m.group(1).split()), strict_mode=True)
    except binascii.Error:
        raise NotAKeyError(f"{source}: the PEM block is not valid base64") from None


def describe_key_type(key: object) -> str:
    """A short human name for a key object's algorithm (for error messages)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    names: list[tuple[type, str]] = [
        (dsa.DSAPrivateKey, "DSA"),
        (ed448.Ed448PrivateKey, "Ed448"),
        (x25519.X25519PrivateKey, "X25519"),
        (x448.X448PrivateKey, "X448"),
    ]
    for cls, name in names:
        if isinstance(key, cls):
            return name
    return type(key).__name__


def decode_private_key(
    data: bytes, passphrase: bytes | None, *, source: str = "key"
) -> Ed25519PrivateKey:
    """Parse a key file's bytes; ``source`` names the file in error messages."""
    passphrase = passphrase or None
    label = _pem_label(data, source)
    _check_pem_body(data, label, source)
    encrypted = label == _ENCRYPTED
    if encrypted and passphrase is None:
        raise PassphraseRequiredError(f"{source} is encrypted and no passphrase was given")
    if not encrypted and passphrase is not None:
        raise KeyNotEncryptedError(
            f"{source} is not encrypted, but a passphrase was given; "
            "refusing to guess which key was meant"
        )
    try:
        key = serialization.load_pem_private_key(data, passphrase)
    except UnsupportedAlgorithm:
        raise UnsupportedKeyTypeError(
            f"{source} uses an algorithm or encryption this build of cryptography does not support"
        ) from None
    except ValueError:
        if encrypted:
            raise WrongPassphraseError(
                f"wrong passphrase for {source} (or the file is damaged)"
            ) from None
        raise NotAKeyError(f"{source} is not a valid PKCS#8 private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UnsupportedKeyTypeError(
            f"{source} holds a {describe_key_type(key)} key; only Ed25519 keys are supported"
        )
    return key


# --- files --------------------------------------------------------------------------------


def save_private_key(
    path: StrPath,
    key: Ed25519PrivateKey,
    passphrase: bytes | None,
    *,
    allow_unencrypted: bool = False,
    work_factor: int = DEFAULT_WORK_FACTOR,
) -> None:
    """Write a new key file (mode 0600); raise KeyFileExistsError rather than overwrite."""
    data = encode_private_key(
        key, passphrase, allow_unencrypted=allow_unencrypted, work_factor=work_factor
    )
    write_new_secret_file(path, data)


def write_new_secret_file(path: StrPath, data: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``data``, durably; never replace a file.

    :func:`ledger.durable.write_new`: of two racing writers exactly one wins.
    """
    target = os.path.abspath(os.fspath(path))
    try:
        write_new(target, data, mode=KEY_FILE_MODE)
    except FileExistsError:
        raise KeyFileExistsError(
            f"{target} already exists; refusing to overwrite a key file"
        ) from None
    except FileNotFoundError:
        raise KeyFileError(f"cannot create {target}: directory does not exist") from None
    except OSError as e:
        raise KeyFileError(f"cannot create {target}: {e.strerror}") from None


def _loose_mode_message(source: str, mode: int) -> str:
    return (
        f"{source} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
        f"run: chmod 600 {source}"
    )


def read_key_file(path: StrPath, *, strict_permissions: bool = False) -> bytes:
    """The bytes of a key file, after checking type, size and permissions on the open file."""
    source = os.fspath(path)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileNotFoundError(f"{source} does not exist") from None
    except OSError as e:
        raise KeyFileError(f"cannot read {source}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAKeyError(f"{source} is not a regular file")
        if st.st_size > MAX_KEY_FILE_SIZE:
            raise NotAKeyError(f"{source} is too large for a key file ({st.st_size} bytes)")
        if st.st_mode & 0o077:
            message = _loose_mode_message(source, st.st_mode)
            if strict_permissions:
                raise InsecurePermissionsError(message)
            warnings.warn(message, InsecureKeyFileWarning, stacklevel=3)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_KEY_FILE_SIZE:
                raise NotAKeyError(f"{source} is too large for a key file")
        return b"".join(chunks)
    except OSError as e:
        raise KeyFileError(f"cannot read {source}: {e.strerror}") from None
    finally:
        os.close(fd)


def check_key_file_permissions(path: StrPath) -> None:
    """Raise InsecurePermissionsError if the key file's group or others have any access."""
    source = os.fspath(path)
    try:
        st = os.stat(source)
    except FileNotFoundError:
        raise KeyFileNotFoundError(f"{source} does not exist") from None
    if st.st_mode & 0o077:
        raise InsecurePermissionsError(_loose_mode_message(source, st.st_mode))


def load_private_key(
    path: StrPath, passphrase: bytes | None, *, strict_permissions: bool = False
) -> Ed25519PrivateKey:
    """Load an Ed25519 key file; ``passphrase`` None (or empty) for an unencrypted one."""
    data = read_key_file(path, strict_permissions=strict_permissions)
    return decode_private_key(data, passphrase, source=os.fspath(path))


def key_file_is_encrypted(path: StrPath) -> bool:
    """Whether a key file needs a passphrase (so a CLI prompts only when it must)."""
    data = read_key_file(path)
    return _pem_label(data, os.fspath(path)) == _ENCRYPTED
