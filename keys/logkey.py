"""The log's own checkpoint key (docs/spec.md, "Log key"), created on first use.

The log signs checkpoints as a C2SP signed note whose key name is its origin.
:func:`load_or_create_log_key` loads that key from a file, or creates the file
if it does not exist yet, and returns a :class:`~keys.signer.Signer` named after
the origin (so ``signer.note_signer()`` signs checkpoints and ``signer.vkey()``
is the vkey to publish).

Decision: the log key may be stored unencrypted. A server must start
unattended, and a passphrase that sits in the server's environment or beside
the key protects little. So:

* with no passphrase configured the file is plain PKCS#8, and it must then be
  readable by its owner only: the function refuses (InsecurePermissionsError)
  a file that its group or others may access in any way, and creates it with
  mode 0600;
* with a passphrase it is encrypted like a signatory's key (keys.pkcs8), and
  the same mode rule applies;
* a file encrypted when no passphrase is configured, or plain when one is, is
  refused (PassphraseRequiredError, KeyNotEncryptedError): never silently
  replaced, since a new key would fork the log's identity.

Creation is race-safe: the file appears in one step under ``O_EXCL``-style
rules (keys.keyfile), so when two processes start together one creates the key
and the other, finding the name taken, loads the winner's complete file.
"""

from __future__ import annotations

from keys.errors import KeyFileExistsError, KeyFileNotFoundError
from keys.keyfile import StrPath, generate_private_key, save_private_key
from keys.pkcs8 import DEFAULT_WORK_FACTOR
from keys.signer import Signer
from ledger.core.note import check_key_name


def load_or_create_log_key(
    path: StrPath,
    origin: str,
    passphrase: bytes | None = None,
    *,
    work_factor: int = DEFAULT_WORK_FACTOR,
) -> Signer:
    """The log's Signer, named ``origin``; the key file is created if it is missing."""
    check_key_name(origin)
    passphrase = passphrase or None
    try:
        return Signer.load(path, passphrase, name=origin, strict_permissions=True)
    except KeyFileNotFoundError:
        pass
    key = generate_private_key()
    try:
        save_private_key(
            path,
            key,
            passphrase,
            allow_unencrypted=passphrase is None,
            work_factor=work_factor,
        )
    except KeyFileExistsError:
        # Another process created it between our load and our save: use its key.
        return Signer.load(path, passphrase, name=origin, strict_permissions=True)
    return Signer(key, name=origin)
