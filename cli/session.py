"""A conversation with one server under one trusted log key.

:func:`open_session` fetches ``GET /api/v1/log`` and decides which log key to trust:

1. ``--log-key VKEY`` (or a file holding it), if given: the server's key must be
   that one, else nothing is sent (exit 5);
2. else the key pinned for this server (:class:`cli.config.Pins`): if the server
   now shows another key, a framed warning says so, and writes are refused (exit 5)
   until the user checks the new key out of band and runs ``ledger log --repin``;
3. else (first contact) the server's key, which is pinned from now on, with a note
   saying where and that it should be compared with the operator's publication.

The server's current checkpoint must verify with the trusted key and name the
server's origin; the origin is what records are signed for (their ``log`` field).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cli.client import DEFAULT_TIMEOUT_S, LedgerClient
from cli.config import Pins, check_vkey, read_vkey_option
from cli.errors import VerifyError
from cli.output import loud_warning, note
from ledger.core.errors import LedgerError
from ledger.verify.trust import Trust


@dataclass(frozen=True)
class ServerOptions:
    """``--server``, ``--log-key`` and ``--timeout`` of a command."""

    server: str
    log_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S

    def client(self) -> LedgerClient:
        return LedgerClient(self.server, timeout=self.timeout)


@dataclass
class Session:
    client: LedgerClient
    origin: str
    vkey: str
    trust: Trust
    info: dict[str, Any]
    key_changed: bool = False

    @property
    def server(self) -> str:
        return self.client.server


def _trust(vkey: str) -> Trust:
    try:
        return Trust.from_vkeys([vkey])
    except LedgerError as e:  # pragma: no cover - check_vkey ran first
        raise VerifyError(f"cannot use the log key {vkey}: {e}") from None


def open_session(
    opts: ServerOptions,
    *,
    for_write: bool,
    pins: Pins | None = None,
    quiet: bool = False,
) -> Session:
    """Connect, choose the trusted log key (see the module docstring), check the checkpoint."""
    client = opts.client()
    try:
        return _open(client, opts, for_write=for_write, pins=pins or Pins(), quiet=quiet)
    except BaseException:
        client.close()
        raise


def _open(
    client: LedgerClient, opts: ServerOptions, *, for_write: bool, pins: Pins, quiet: bool
) -> Session:
    info = client.log_info()
    server_vkey = check_vkey(info["vkey"], what=f"the log key served by {client.server}")
    changed = False
    if opts.log_key is not None:
        vkey = read_vkey_option(opts.log_key)
        if vkey != server_vkey:
            raise VerifyError(
                f"the server {client.server} signs with the log key {server_vkey}, "
                f"not the one given with --log-key ({vkey}); nothing was sent"
            )
        if pins.get(client.server) is None:
            pins.save(client.server, vkey)
    else:
        pinned = pins.get(client.server)
        if pinned is None:
            vkey = server_vkey
            path = pins.save(client.server, vkey)
            if not quiet:
                note(
                    f"First contact with {client.server}: pinned its log key\n  {vkey}\n"
                    f"  in {path}. Compare it with the key the log's operator publishes."
                )
        elif pinned != server_vkey:
            changed = True
            vkey = pinned
            loud_warning(
                [
                    f"THE LOG KEY OF {client.server} HAS CHANGED.",
                    f"pinned: {pinned}",
                    f"server: {server_vkey}",
                    "Receipts from this server will not verify against the pinned key.",
                    "This is either a new log, a replaced key, or another server posing as it.",
                    "Check the new key with the log's operator, then: ledger log --repin",
                ]
            )
            if for_write:
                raise VerifyError(
                    f"the log key of {client.server} changed since it was pinned "
                    f"({pins.path(client.server)}); refusing to submit"
                )
        else:
            vkey = pinned
    trust = _trust(vkey)
    origin = info["origin"]
    if trust.origin != origin:
        raise VerifyError(
            f"the server says its origin is {origin!r}, but its log key is named {trust.origin!r}"
        )
    if not changed:
        try:
            trust.open_checkpoint(info["checkpoint"].encode("utf-8"))
        except LedgerError as e:
            raise VerifyError(
                f"the server's checkpoint does not verify with the log key {vkey}: {e}"
            ) from None
    return Session(
        client=client, origin=origin, vkey=vkey, trust=trust, info=info, key_changed=changed
    )


__all__ = ["ServerOptions", "Session", "open_session"]
