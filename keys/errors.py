"""Errors of the signer's side: key files, passphrases and key imports.

They extend :class:`ledger.core.errors.LedgerError`, so each carries a stable
``code`` and a one-line message. No error of this package ever carries key
material or a passphrase: messages name files, key types and modes only.
"""

from __future__ import annotations

from ledger.core.errors import LedgerError


class KeysError(LedgerError):
    """Base class of every error of the ``keys`` package."""

    code = "key_error"


class KeyFileError(KeysError):
    """A key file is missing, in the way, exposed or not what it should be."""

    code = "key_file"


class KeyFileExistsError(KeyFileError):
    """Refusing to overwrite an existing key file."""

    code = "key_exists"


class KeyFileNotFoundError(KeyFileError):
    """The key file does not exist."""

    code = "key_not_found"


class InsecurePermissionsError(KeyFileError):
    """The key file can be read or written by its group or by others."""

    code = "insecure_permissions"


class NotAKeyError(KeyFileError):
    """The file is not a private key in a format we read."""

    code = "not_a_key"


class UnsupportedKeyTypeError(KeyFileError):
    """The file holds a private key, but not an Ed25519 one."""

    code = "unsupported_key_type"


class PassphraseError(KeysError):
    """Something is wrong with the passphrase, or with its absence."""

    code = "passphrase"


class WrongPassphraseError(PassphraseError):
    """The passphrase does not decrypt the key."""

    code = "wrong_passphrase"


class PassphraseRequiredError(PassphraseError):
    """The key is encrypted and no passphrase could be obtained."""

    code = "passphrase_required"


class KeyNotEncryptedError(PassphraseError):
    """A passphrase was given for a key that is stored without encryption."""

    code = "key_not_encrypted"


class EmptyPassphraseError(PassphraseError):
    """Refusing to store a key unencrypted without an explicit opt-in."""

    code = "empty_passphrase"


class MissingDependencyError(KeysError):
    """An optional package needed for this operation is not installed."""

    code = "missing_dependency"
