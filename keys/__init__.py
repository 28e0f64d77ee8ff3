"""The signer's side: Ed25519 key generation, encrypted storage, loading and signing.

Modules: :mod:`keys.signer` (the :class:`Signer` that signs records and notes),
:mod:`keys.keyfile` (PKCS#8 key files, encrypted at rest, created with O_EXCL
and mode 0600), :mod:`keys.pkcs8` (PBES2/scrypt/AES-256-CBC encryption),
:mod:`keys.passphrase` (where a passphrase comes from), :mod:`keys.ssh` (OpenSSH
Ed25519 key import), :mod:`keys.logkey` (the log's checkpoint key),
:mod:`keys.export` (public key forms: raw, base64, key hash, key ID, vkey) and
:mod:`keys.errors`.
"""

from keys.errors import (
    EmptyPassphraseError,
    InsecurePermissionsError,
    KeyFileError,
    KeyFileExistsError,
    KeyFileNotFoundError,
    KeyNotEncryptedError,
    KeysError,
    MissingDependencyError,
    NotAKeyError,
    PassphraseError,
    PassphraseRequiredError,
    UnsupportedKeyTypeError,
    WrongPassphraseError,
)
from keys.export import public_key_b64, public_key_bytes
from keys.keyfile import (
    InsecureKeyFileWarning,
    check_key_file_permissions,
    generate_private_key,
    key_file_is_encrypted,
    load_private_key,
    save_private_key,
)
from keys.logkey import load_or_create_log_key
from keys.passphrase import PASSPHRASE_ENV, resolve_passphrase
from keys.signer import NoteSigner, Signer
from keys.ssh import import_ssh_key, read_ssh_private_key, ssh_key_is_encrypted

__all__ = [
    "PASSPHRASE_ENV",
    "EmptyPassphraseError",
    "InsecureKeyFileWarning",
    "InsecurePermissionsError",
    "KeyFileError",
    "KeyFileExistsError",
    "KeyFileNotFoundError",
    "KeyNotEncryptedError",
    "KeysError",
    "MissingDependencyError",
    "NotAKeyError",
    "NoteSigner",
    "PassphraseError",
    "PassphraseRequiredError",
    "Signer",
    "UnsupportedKeyTypeError",
    "WrongPassphraseError",
    "check_key_file_permissions",
    "generate_private_key",
    "import_ssh_key",
    "key_file_is_encrypted",
    "load_or_create_log_key",
    "load_private_key",
    "public_key_b64",
    "public_key_bytes",
    "read_ssh_private_key",
    "resolve_passphrase",
    "save_private_key",
    "ssh_key_is_encrypted",
]
