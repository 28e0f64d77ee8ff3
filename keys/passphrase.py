"""Where a key's passphrase comes from.

:func:`resolve_passphrase` takes the first of these that is present:

1. an explicit value (a library caller's, or a test's);
2. a passphrase file (``--passphrase-file``): its bytes, less one trailing
   newline (``\\n`` or ``\\r\\n``), so that ``echo secret > file`` works;
3. the environment variable ``LEDGER_KEY_PASSPHRASE`` (UTF-8);
4. an interactive prompt (:func:`getpass.getpass`), only when standard input
   is a terminal. Anywhere else (CI, a pipe, a service) it fails with a
   :class:`PassphraseRequiredError` saying how to supply one, rather than hang.

An empty passphrase from any source is an error: storing a key unencrypted is
a separate, explicit choice (``allow_unencrypted=True``), never the result of an
empty line. Passphrases never appear in messages.
"""

from __future__ import annotations

import getpass
import os
import sys

from keys.errors import KeyFileError, PassphraseError, PassphraseRequiredError

StrPath = str | os.PathLike[str]

PASSPHRASE_ENV = "LEDGER_KEY_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
MAX_PASSPHRASE_FILE_SIZE = 4096


def read_passphrase_file(path: StrPath) -> bytes:
    """The passphrase stored in a file, less one trailing newline."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read(MAX_PASSPHRASE_FILE_SIZE + 1)
    except FileNotFoundError:
        raise KeyFileError(f"passphrase file {source} does not exist") from None
    except OSError as e:
        raise KeyFileError(f"cannot read passphrase file {source}: {e.strerror}") from None
    if len(data) > MAX_PASSPHRASE_FILE_SIZE:
        raise PassphraseError(
            f"passphrase file {source} is larger than {MAX_PASSPHRASE_FILE_SIZE} bytes"
        )
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise PassphraseError(f"passphrase file {source} is empty")
    return data


def _stdin_is_terminal() -> bool:
    stdin = sys.stdin
    try:
        return stdin is not None and stdin.isatty()
    except (ValueError, OSError):  # closed or detached
        return False


def resolve_passphrase(
    passphrase: bytes | str | None = None,
    *,
    passphrase_file: StrPath | None = None,
    prompt: str = "Passphrase: ",
    confirm: bool = False,
) -> bytes:
    """The passphrase from the first available source; see the module docstring.

    ``confirm=True`` asks twice at the prompt (for a new key); it has no effect on
    the other sources.
    """
    if passphrase is not None:
        value = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        if not value:
            raise PassphraseError("the passphrase given is empty")
        return value
    if passphrase_file is not None:
        return read_passphrase_file(passphrase_file)
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        if not env:
            raise PassphraseError(f"{PASSPHRASE_ENV} is set but empty")
        return env.encode("utf-8")
    if not _stdin_is_terminal():
        raise PassphraseRequiredError(
            "no passphrase: standard input is not a terminal; "
            f"give a passphrase file or set {PASSPHRASE_ENV}"
        )
    try:
        first = getpass.getpass(prompt)
        if not first:
            raise PassphraseError("empty passphrase")
        if confirm and getpass.getpass("Repeat passphrase: ") != first:
            raise PassphraseError("the passphrases do not match")
    except EOFError:
        raise PassphraseRequiredError("no passphrase: end of input at the prompt") from None
    return first.encode("utf-8")
