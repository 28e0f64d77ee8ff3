"""The HTTP client of the ledger service (``api/routes``), as ``ledger`` uses it.

Paths and answers are those of the service's API:

- ``GET /api/v1/log``: origin, vkey, size, root, checkpoint;
- ``POST /api/v1/records`` (the record as ``text/plain``): 201 appended or 200 already
  in the log, ``{index, leaf_hash, record_id, existing, entry, receipt, checkpoint}``;
- ``POST /api/v1/records/batch?receipts=true`` (a JSON list of record texts):
  ``{results: [{status, index, leaf_hash, record_id, receipt, code, detail}], checkpoint}``;
- ``GET /api/v1/receipts/{index|leaf hash}`` (text/plain tlog-proof),
  ``GET /api/v1/entries/{index}``, ``GET /api/v1/entries/by-leaf/{hash}``;
- ``GET /api/v1/statements``, ``/statements/{id}``, ``/statements/{id}/endorsements``,
  ``/signatories/{key hash}``, ``/signatories?q=``;
- the tlog-tiles entry bundles ``/tile/entries/<N>[.p/<W>]``.

Errors: a connection that fails raises :class:`~cli.errors.UnreachableError`; an answer
in ``application/problem+json`` raises :class:`~cli.errors.RefusedError` with its
``detail`` and ``code``; 429 and 503 answers are retried after their Retry-After
(bounded), which is safe because the log deduplicates records exactly. Nothing the
server says is trusted here: receipts are checked by :mod:`cli.receipts` against the
pinned log key.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx

from cli.errors import (
    InputError,
    NotFoundError,
    RefusedError,
    UnreachableError,
    VerifyError,
    refused,
)
from ledger import __version__
from ledger.core.errors import LedgerError
from ledger.core.tiles import TILE_WIDTH, decode_bundle, entries_path

DEFAULT_SERVER = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0
#: How many times a 429 or 503 answer is retried, and the longest wait honoured.
RETRIES = 4
MAX_RETRY_WAIT_S = 10.0
PROBLEM_JSON = "application/problem+json"


def normalize_server(server: str) -> str:
    """``server`` as a base URL without a final slash; a bare host gets ``http://``."""
    s = server.strip()
    if not s:
        raise InputError("the server URL is empty (--server or LEDGER_SERVER)")
    if "://" not in s:
        s = "http://" + s
    parts = urllib.parse.urlsplit(s)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"--server {server!r} is not an http(s) URL")
    return s.rstrip("/")


class LedgerClient:
    """A connection to one ledger server; use it as a context manager."""

    def __init__(self, server: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.server = normalize_server(server)
        self._http = httpx.Client(
            base_url=self.server,
            timeout=timeout,
            headers={"User-Agent": f"endorsement-ledger-cli/{__version__}"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        for attempt in range(RETRIES + 1):
            try:
                response = self._http.request(method, path, **kw)
            except httpx.TimeoutException:
                raise UnreachableError(
                    f"the server at {self.server} did not answer in time ({method} {path})"
                ) from None
            except httpx.TransportError as e:
                reason = str(e) or type(e).__name__
                raise UnreachableError(
                    f"cannot reach the server at {self.server}: {reason} "
                    "(is 'ledger serve' running? set --server or LEDGER_SERVER)"
                ) from None
            if response.status_code in (429, 503) and attempt < RETRIES:
                wait = _retry_after(response)
                if wait is not None:
                    time.sleep(wait)
                    continue
            return self._check(response, method, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, response: httpx.Response, method: str, path: str) -> httpx.Response:
        status = response.status_code
        if status < 300:
            return response
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media in (PROBLEM_JSON, "application/json"):
            try:
                doc = response.json()
            except ValueError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("code"), str):
                detail = str(doc.get("detail") or doc.get("title") or "")
                if status >= 500:
                    raise UnreachableError(
                        f"the server failed: {detail} (code {doc['code']}, HTTP {status})"
                    )
                raise refused(status, doc["code"], detail)
        if status >= 500:
            raise UnreachableError(f"the server at {self.server} failed: HTTP {status} on {path}")
        raise UnreachableError(
            f"unexpected answer from {self.server}: HTTP {status} on {method} {path} "
            "(is this an Endorsement Ledger server?)"
        )

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise UnreachableError(
                f"the server at {self.server} answered {response.request.url.path} "
                "with something that is not JSON (is this an Endorsement Ledger server?)"
            ) from None

    def get_json(self, path: str, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        doc = self._json(self._request("GET", path, params=query))
        if not isinstance(doc, dict):
            raise UnreachableError(f"unexpected answer from {self.server}{path}: not a JSON object")
        return doc

    # --- the log ------------------------------------------------------------------------

    def log_info(self) -> dict[str, Any]:
        """``GET /api/v1/log``: origin, vkey, size, root, checkpoint."""
        doc = self.get_json("/api/v1/log")
        for name in ("origin", "vkey", "checkpoint"):
            if not isinstance(doc.get(name), str):
                raise UnreachableError(
                    f"{self.server}/api/v1/log has no {name!r}: is this an Endorsement Ledger "
                    "server?"
                )
        return doc

    def submit(self, record: bytes) -> dict[str, Any]:
        """``POST /api/v1/records``: the acceptance (201 new, 200 already in the log)."""
        response = self._request(
            "POST",
            "/api/v1/records",
            content=record,
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        doc = self._json(response)
        if not isinstance(doc, dict):
            raise UnreachableError("unexpected answer to a submission: not a JSON object")
        return doc

    def submit_batch(self, records: Sequence[bytes], *, receipts: bool = True) -> dict[str, Any]:
        """``POST /api/v1/records/batch``: one result per record, in order."""
        body = json.dumps([r.decode("utf-8") for r in records], ensure_ascii=False)
        response = self._request(
            "POST",
            "/api/v1/records/batch",
            params={"receipts": "true" if receipts else "false"},
            content=body.encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        doc = self._json(response)
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
            raise UnreachableError("unexpected answer to a batch: no results list")
        if len(doc["results"]) != len(records):
            raise UnreachableError(
                f"the server answered {len(doc['results'])} results for {len(records)} records"
            )
        return doc

    def receipt(self, ref: str) -> bytes:
        """``GET /api/v1/receipts/{index or leaf hash}``: a tlog-proof against the newest
        checkpoint."""
        try:
            return self._request("GET", f"/api/v1/receipts/{ref}").content
        except RefusedError as e:
            if e.status == 404:
                raise NotFoundError(f"the log has no entry {ref} ({e.detail})") from None
            raise

    def entry(self, ref: str) -> dict[str, Any]:
        """``GET /api/v1/entries/{index}`` or ``.../by-leaf/{hash}`` for 64 hex digits."""
        path = f"/api/v1/entries/by-leaf/{ref}" if len(ref) == 64 else f"/api/v1/entries/{ref}"
        try:
            return self.get_json(path)
        except RefusedError as e:
            if e.status == 404:
                raise NotFoundError(f"the log has no entry {ref} ({e.detail})") from None
            raise

    def entries_at(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """The entries at ``indexes``, read from the tlog-tiles entry bundles.

        One request per bundle of 256 entries (bundles are not rate-limited), each
        only as wide as needed. The bytes are untrusted until a receipt covers them.
        """
        wanted: dict[int, list[int]] = {}
        for i in indexes:
            wanted.setdefault(i // TILE_WIDTH, []).append(i)
        out: dict[int, bytes] = {}
        for k, members in sorted(wanted.items()):
            width = max(members) - k * TILE_WIDTH + 1
            path = "/" + entries_path(k, width)
            data = self._request("GET", path).content
            try:
                bundle = decode_bundle(data, width)
            except LedgerError as e:
                raise VerifyError(f"the server's entry bundle {path} is malformed: {e}") from None
            for i in members:
                out[i] = bundle[i - k * TILE_WIDTH]
        return out

    # --- the projection -----------------------------------------------------------------

    def statements(self, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        return self.get_json("/api/v1/statements", offset=offset, limit=limit)

    def all_statements(self) -> Iterator[dict[str, Any]]:
        offset: int | None = 0
        while offset is not None:
            page = self.statements(offset=offset, limit=1000)
            yield from page.get("items", [])
            offset = page.get("next_offset")

    def statement(self, statement_id: str) -> dict[str, Any]:
        try:
            return self.get_json(f"/api/v1/statements/{statement_id}")
        except RefusedError as e:
            if e.status == 404:
                raise NotFoundError(f"unknown statement {statement_id}: {e.detail}") from None
            raise

    def endorsements(
        self,
        statement_id: str,
        *,
        kind: str | None = None,
        country: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        return self.get_json(
            f"/api/v1/statements/{statement_id}/endorsements",
            kind=kind,
            country=country,
            offset=offset,
            limit=limit,
        )

    def signatory(self, key_hash: str) -> dict[str, Any] | None:
        """The signatory that has (or had) the key of hash ``key_hash``, or None."""
        try:
            return self.get_json(f"/api/v1/signatories/{key_hash}")
        except RefusedError as e:
            if e.status == 404:
                return None
            raise

    def search_signatories(self, query: str, *, limit: int = 50) -> dict[str, Any]:
        return self.get_json("/api/v1/signatories", q=query, limit=limit)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value.isdigit():
        return None
    return min(float(value), MAX_RETRY_WAIT_S)


__all__ = ["DEFAULT_SERVER", "DEFAULT_TIMEOUT_S", "LedgerClient", "normalize_server"]
