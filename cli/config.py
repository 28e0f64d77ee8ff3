"""The client's own files: the log keys it pinned, one per server.

``ledger`` trusts a server's log key on first contact (trust on first use, as SSH
does with host keys) and keeps it in ``<config dir>/<server>.vkey``, one line, the
signed-note verifier key. From then on every receipt is checked against that key,
and a server that shows another key gets a loud warning (and writes to it are
refused) until the user checks the new key out of band and pins it again
(``ledger log --repin``). ``--log-key VKEY`` (or a file holding one, such as the
server's ``<data-dir>/log.vkey``) pins explicitly.

The config directory is ``$LEDGER_CONFIG_DIR`` if set, else
``$XDG_CONFIG_HOME/endorsement-ledger``, else ``~/.config/endorsement-ledger``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import urllib.parse
from pathlib import Path

from cli.errors import InputError
from ledger.core.errors import LedgerError
from ledger.core.note import Ed25519Verifier, parse_vkey
from ledger.verify.cli import read_log_key

CONFIG_ENV = "LEDGER_CONFIG_DIR"
APP_DIR = "endorsement-ledger"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def config_dir() -> Path:
    """Where the client keeps its pins (see the module docstring)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / APP_DIR


def server_slug(server: str) -> str:
    """A file name for a server URL: host, port and path (``127.0.0.1_8000``)."""
    parts = urllib.parse.urlsplit(server)
    slug = _UNSAFE.sub("_", f"{parts.netloc}{parts.path}").strip("_.")
    return slug or "server"


def check_vkey(vkey: str, *, what: str = "log key") -> str:
    """``vkey`` if it is an Ed25519 signed-note verifier key; InputError otherwise."""
    vkey = vkey.strip()
    try:
        verifier = parse_vkey(vkey)
    except LedgerError as e:
        raise InputError(f"{what} {vkey[:100]!r} is not a verifier key: {e}") from None
    if not isinstance(verifier, Ed25519Verifier):
        raise InputError(f"{what} {vkey[:100]!r} is not an Ed25519 log key")
    return vkey


def read_vkey_option(value: str) -> str:
    """``--log-key``: a vkey, or the path of a file holding one (``log.vkey``), read by the
    rule ``ledger-verify --log-key`` follows (:func:`ledger.verify.cli.read_log_key`)."""
    try:
        text = read_log_key(value)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise InputError(
            f"--log-key {value!r} is neither a verifier key nor a readable file ({reason})"
        ) from None
    return check_vkey(text)


class Pins:
    """The pinned log keys, one file per server."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else config_dir()

    def path(self, server: str) -> Path:
        return self.directory / f"{server_slug(server)}.vkey"

    def get(self, server: str) -> str | None:
        path = self.path(server)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise InputError(f"cannot read the pinned log key {path}: {e.strerror}") from None
        return check_vkey(text, what=f"the pinned log key in {path}")

    def save(self, server: str, vkey: str) -> Path:
        """Pin ``vkey`` for ``server`` (atomically replacing any earlier pin)."""
        path = self.path(server)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            try:
                tmp.write_text(vkey + "\n", encoding="utf-8")
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        except OSError as e:
            raise InputError(f"cannot pin the log key in {path}: {e.strerror or e}") from None
        return path


__all__ = ["CONFIG_ENV", "Pins", "check_vkey", "config_dir", "read_vkey_option", "server_slug"]
