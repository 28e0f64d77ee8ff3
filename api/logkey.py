"""Loading the log's signing key from the settings (created on first start)."""

from __future__ import annotations

from api.settings import Settings
from keys.errors import KeysError
from keys.logkey import load_or_create_log_key
from keys.signer import Signer


def load_log_key(settings: Settings) -> Signer:
    """The log key named by ``settings``, created (mode 0600) if missing.

    Raises :class:`KeysError` with a message naming the file and what is wrong.
    """
    passphrase = (
        settings.log_key_passphrase.get_secret_value().encode()
        if settings.log_key_passphrase is not None
        else None
    )
    path = settings.effective_log_key_path
    try:
        return load_or_create_log_key(path, settings.origin, passphrase)
    except KeysError as e:
        raise KeysError(f"cannot use the log key {path}: {e}") from e
