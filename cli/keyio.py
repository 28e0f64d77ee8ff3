"""Key files as ``ledger`` reads and writes them.

A signatory's private key is a ``keys`` key file (PKCS#8 PEM, encrypted with a
passphrase unless the user asked for ``--no-encrypt``). Next to it, ``ledger key
generate`` and ``ledger key import-ssh`` write ``<key file>.pub``: one line, the
base64 of the raw 32-byte Ed25519 public key, as records spell keys (docs/spec.md,
"Identities and keys"). The ``.pub`` file is what a co-author sends to the author
who drafts a statement, and what commands that only need the public half read
(drafts, ``ledger key show``), so that they do not ask for a passphrase.

Wherever a public key is read, an OpenSSH public key is accepted too: the line of an
``id_ed25519.pub`` (``ssh-ed25519 <base64> [comment]``, RFC 8709 section 4: the
base64 of the string ``ssh-ed25519`` and the 32-byte key, each prefixed with its
uint32 length), as a value or a file; and beside an OpenSSH private key file, its
``.pub``.

A passphrase comes from ``--passphrase-file``, else ``LEDGER_KEY_PASSPHRASE``, else
a prompt on a terminal (``keys.passphrase.resolve_passphrase``); it is asked for only
when the key file is encrypted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import struct
import warnings
from pathlib import Path

from cli.errors import InputError, KeyProblemError
from cli.output import warn
from keys.keyfile import InsecureKeyFileWarning, key_file_is_encrypted
from keys.passphrase import resolve_passphrase
from keys.signer import Signer
from ledger.core import ed25519
from ledger.core.encoding import b64decode_strict, b64encode
from ledger.core.errors import LedgerError

PUB_SUFFIX = ".pub"
SSH_ED25519 = "ssh-ed25519"
_B64_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def pub_path(key_path: Path) -> Path:
    """``<key file>.pub``."""
    return key_path.with_name(key_path.name + PUB_SUFFIX)


def _show_key_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for w in caught:
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            warn(text)


def load_signer(path: Path, passphrase_file: Path | None = None) -> Signer:
    """The private key of a key file, asking for its passphrase only if it is encrypted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InsecureKeyFileWarning)
        passphrase = None
        if key_file_is_encrypted(path):
            passphrase = resolve_passphrase(
                passphrase_file=passphrase_file, prompt=f"Passphrase for {path}: "
            )
        signer = Signer.load(path, passphrase)
    _show_key_warnings(caught)
    return signer


def new_passphrase(path: Path, *, no_encrypt: bool, passphrase_file: Path | None) -> bytes | None:
    """The passphrase to encrypt a new key file with (None with ``--no-encrypt``)."""
    if no_encrypt:
        if passphrase_file is not None:
            raise InputError("--no-encrypt and --passphrase-file contradict each other")
        return None
    return resolve_passphrase(
        passphrase_file=passphrase_file, prompt=f"New passphrase for {path}: ", confirm=True
    )


def write_public_key(key_path: Path, public_key: bytes) -> Path:
    """Write ``<key file>.pub``; an existing one must hold the same key."""
    path = pub_path(key_path)
    line = b64encode(public_key) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        if _read_pub_file(path) != public_key:
            raise KeyProblemError(
                f"{path} exists and holds another public key; move it away first"
            ) from None
        return path
    except OSError as e:
        raise KeyProblemError(f"cannot write {path}: {e.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(line)
    return path


def _read_pub_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the public key file {path}: {e}") from None
    return parse_public_key_text(text, source=str(path))


def parse_public_key_text(text: str, *, source: str) -> bytes:
    """An Ed25519 public key that passes the acceptance rule: 44 characters of base64,
    or an OpenSSH public key line (:func:`parse_openssh_public_key`)."""
    if looks_like_openssh(text):
        return parse_openssh_public_key(text, source=source)
    try:
        pub = b64decode_strict(text, field="key", length=32)
        ed25519.check_public_key(pub)
    except LedgerError as e:
        raise InputError(f"{source} is not an Ed25519 public key in base64: {e}") from None
    return pub


def looks_like_openssh(text: str) -> bool:
    """Whether ``text`` is meant as an OpenSSH public key line (``ssh-...``, ``ecdsa-...``)."""
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    return first.startswith(("ssh-", "ecdsa-", "sk-"))


def parse_openssh_public_key(text: str, *, source: str) -> bytes:
    """The 32-byte key of an ``ssh-ed25519 <base64> [comment]`` line (RFC 8709, section 4)."""
    fields = text.strip().split(maxsplit=2)
    if fields[0] != SSH_ED25519:
        raise InputError(f"{source} is an OpenSSH {fields[0]} key, not an Ed25519 key")
    if len(fields) < 2:
        raise InputError(f"{source}: the OpenSSH public key line has no key after {SSH_ED25519}")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise InputError(f"{source}: the OpenSSH public key is not valid base64") from None
    name = SSH_ED25519.encode()
    head = struct.pack(">I", len(name)) + name + struct.pack(">I", 32)
    if len(blob) != len(head) + 32 or not blob.startswith(head):
        raise InputError(f"{source}: not an OpenSSH ssh-ed25519 public key (RFC 8709 encoding)")
    pub = blob[len(head) :]
    try:
        ed25519.check_public_key(pub)
    except LedgerError as e:
        raise InputError(f"{source} is not a usable Ed25519 public key: {e}") from None
    return pub


def looks_like_b64_key(text: str) -> bool:
    return _B64_KEY.fullmatch(text) is not None


def read_public_key(spec: str, passphrase_file: Path | None = None) -> bytes:
    """A public key from a command-line value.

    ``spec`` is the key in base64 or an OpenSSH public key line, a ``.pub`` file (ours
    or OpenSSH's), or a private key file (its ``.pub`` beside it is read if present,
    so that no passphrase is needed).
    """
    if (looks_like_b64_key(spec) or looks_like_openssh(spec)) and not os.path.exists(spec):
        return parse_public_key_text(spec, source="the key given")
    path = Path(spec)
    if not path.exists():
        raise KeyProblemError(f"{path} does not exist (expected a key file, a .pub file or a key)")
    with contextlib.suppress(UnicodeDecodeError, OSError):
        head = path.read_bytes()[:200].decode("ascii", errors="strict").strip()
        if looks_like_b64_key(head) or looks_like_openssh(head):
            return _read_pub_file(path)
    sidecar = pub_path(path)
    if sidecar.exists():
        return _read_pub_file(sidecar)
    return load_signer(path, passphrase_file).public_key


def is_hex_id(text: str) -> bool:
    return _HEX64.fullmatch(text) is not None


def refuse_existing(path: Path) -> None:
    if os.path.lexists(path):
        raise KeyProblemError(f"{path} already exists; refusing to overwrite a key file")


def make_key_directory(path: Path) -> None:
    """Create the directory of a new key file if missing (mode 0700: it holds keys)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise KeyProblemError(f"cannot create {path.parent}: {e.strerror or e}") from None


__all__ = [
    "PUB_SUFFIX",
    "is_hex_id",
    "load_signer",
    "looks_like_b64_key",
    "looks_like_openssh",
    "make_key_directory",
    "new_passphrase",
    "parse_openssh_public_key",
    "parse_public_key_text",
    "pub_path",
    "read_public_key",
    "refuse_existing",
    "write_public_key",
]
