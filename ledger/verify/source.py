"""Read a tiled log through its tlog-tiles paths, from a directory or over HTTP(S).

C2SP tlog-tiles ("APIs") serves a log as static resources under a *prefix*:
``<prefix>/checkpoint``, hash tiles ``<prefix>/tile/<L>/<N>[.p/<W>]`` and entry
bundles ``<prefix>/tile/entries/<N>[.p/<W>]``. A :class:`Source` fetches those
paths, and nothing else, from a static mirror on disk (:class:`DirectorySource`)
or from a server or mirror at an ``http(s)://`` prefix (:class:`HttpSource`,
standard-library ``urllib`` only, so that the verifier installs with nothing but
``cryptography``).

A source returns raw bytes and trusts none of them: the verifier checks every byte
against a signed checkpoint. What a source guarantees is bounded resource use and
clear failures:

* every response is bounded by the largest size its path may legitimately have
  (:func:`max_size`): a checkpoint 1 MiB, a hash tile 8,192 bytes, an entry bundle
  256 entries of at most 65,535 bytes each; a larger answer raises
  :class:`ledger.core.errors.TooLargeError` naming the path;
* a missing resource raises :class:`NotFoundError` (the verifier may fall back from
  a partial tile to the full one, as the spec allows);
* any other failure to read (no such directory, connection refused, HTTP 500,
  timeout) raises :class:`SourceError`, whose message names the resource.
"""

from __future__ import annotations

import gzip
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Protocol

from ledger import __version__
from ledger.core.errors import LedgerError, TooLargeError

#: Largest checkpoint we read: a signed note with many cosignatures fits easily.
MAX_CHECKPOINT_BYTES = 1 << 20
#: A full hash tile: 256 hashes of 32 bytes (tlog-tiles, "Merkle Tree").
MAX_TILE_BYTES = 256 * 32
#: A full entry bundle: 256 entries, each a uint16 length and at most 65,535 bytes.
MAX_BUNDLE_BYTES = 256 * (2 + 65535)
#: Default network timeout, in seconds, for connecting and for each read.
DEFAULT_TIMEOUT_S = 30.0


class SourceError(LedgerError):
    """A resource of the log could not be read (an I/O problem, not a bad log)."""

    code = "io_error"


class NotFoundError(SourceError, LookupError):
    """The source does not have the resource (no such file, HTTP 404 or 410).

    Also a LookupError, which :class:`ledger.core.tiles.TileHashReader` takes as "try
    the full tile".
    """

    code = "not_found"


def max_size(path: str) -> int:
    """The largest response a tlog-tiles ``path`` may legitimately have."""
    if path == "checkpoint":
        return MAX_CHECKPOINT_BYTES
    if path.startswith("tile/entries/"):
        return MAX_BUNDLE_BYTES
    if path.startswith("tile/"):
        return MAX_TILE_BYTES
    raise ValueError(f"not a tlog-tiles path: {path!r}")


def _check_path(path: str) -> None:
    # Paths come from the verifier, never from the server; still refuse anything that
    # could climb out of the prefix.
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a relative tlog-tiles path: {path!r}")
    max_size(path)


class Source(Protocol):
    """Where a log is read from; ``fetch`` takes a tlog-tiles path such as ``checkpoint``."""

    @property
    def location(self) -> str: ...

    def fetch(self, path: str) -> bytes: ...


class _Counters:
    """Requests made and bytes received, for reports and tests."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_read = 0

    def _count(self, data: bytes) -> bytes:
        self.requests += 1
        self.bytes_read += len(data)
        return data


class DirectorySource(_Counters):
    """A static tlog-tiles mirror in a local directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: no such directory")

    @property
    def location(self) -> str:
        return str(self.root)

    def fetch(self, path: str) -> bytes:
        _check_path(path)
        limit = max_size(path)
        file = self.root / path
        try:
            with open(file, "rb") as f:
                data = _read_bounded(f, limit)
        except TooLargeError:
            raise _too_large(path, limit) from None
        except FileNotFoundError:
            raise NotFoundError(f"{file}: no such file", field=path) from None
        except OSError as e:
            raise SourceError(f"{file}: cannot read: {e.strerror or e}", field=path) from None
        if len(data) > limit:
            raise _too_large(path, limit)
        return self._count(data)


class HttpSource(_Counters):
    """A log server or static mirror at an ``http://`` or ``https://`` prefix.

    Each request has a timeout; transient failures (connection errors, timeouts,
    HTTP 429 and 5xx) are retried ``retries`` times with a short backoff. Bodies
    sent with ``Content-Encoding: gzip`` are decompressed, still within the bound.
    """

    def __init__(
        self,
        prefix: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 2,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__()
        parsed = urllib.parse.urlsplit(prefix)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SourceError(f"{prefix}: not an http(s) URL")
        if parsed.query or parsed.fragment:
            raise SourceError(f"{prefix}: a log prefix has no query or fragment")
        self.prefix = prefix.rstrip("/") + "/"
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s

    @property
    def location(self) -> str:
        return self.prefix

    def fetch(self, path: str) -> bytes:
        _check_path(path)
        url = self.prefix + path
        attempt = 0
        while True:
            try:
                return self._count(self._get(url, path))
            except _TransientError as e:
                if attempt >= self.retries:
                    raise SourceError(f"{url}: {e}", field=path) from None
                attempt += 1
                time.sleep(self.backoff_s * attempt)

    def _get(self, url: str, path: str) -> bytes:
        limit = max_size(path)
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            url,
            headers={
                "User-Agent": f"ledger-verify/{__version__}",
                "Accept-Encoding": "gzip, identity",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                encoding = (response.headers.get("Content-Encoding") or "identity").lower()
                if encoding not in ("identity", "gzip"):
                    raise SourceError(
                        f"{url}: unsupported Content-Encoding",
                        field=path,
                        expected="gzip or identity",
                        found=encoding,
                    )
                # Content-Length counts encoded bytes, and gzip makes incompressible
                # data (hash tiles) slightly larger (RFC 1951 stored blocks: 5 bytes per
                # 64 KiB, plus the header). The decoded size is bounded in _gunzip.
                raw_limit = limit + limit // 64 + 1024 if encoding == "gzip" else limit
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > raw_limit:
                    raise _too_large(path, limit)
                try:
                    raw = _read_bounded(response, raw_limit)
                except TooLargeError:
                    raise _too_large(path, limit) from None
        except urllib.error.HTTPError as e:
            e.close()  # it holds the response and its socket
            if e.code in (404, 410):
                raise NotFoundError(f"{url}: HTTP {e.code}", field=path) from None
            if e.code == 429 or e.code >= 500:
                raise _TransientError(f"HTTP {e.code} {e.reason}") from None
            raise SourceError(f"{url}: HTTP {e.code} {e.reason}", field=path) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                raise _TransientError(f"timed out after {self.timeout:g} s") from None
            raise _TransientError(f"cannot connect: {reason}") from None
        except TimeoutError:
            raise _TransientError(f"timed out after {self.timeout:g} s") from None
        except (ConnectionError, http.client.HTTPException) as e:
            raise _TransientError(f"connection failed: {e!r}") from None
        if encoding == "gzip":
            return _gunzip(raw, limit, url, path)
        return raw


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


_CHUNK = 1 << 16


def _read_bounded(f: _Readable, limit: int) -> bytes:
    """Read to the end, but no more than ``limit`` bytes (TooLargeError past that).

    In chunks: ``read(limit + 1)`` would allocate ``limit`` bytes up front, 16 MiB
    for every bundle, however small the answer.
    """
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            return b"".join(parts)
        total += len(chunk)
        if total > limit:
            raise TooLargeError(
                "response is larger than any valid one",
                expected=f"<= {limit} bytes",
                found=f"> {limit} bytes",
            )
        parts.append(chunk)


class _TransientError(Exception):
    """A failure worth one more try."""


def _too_large(path: str, limit: int) -> TooLargeError:
    return TooLargeError(
        f"{path} is larger than any valid response",
        field=path,
        expected=f"<= {limit} bytes",
        found=f"> {limit} bytes",
    )


def _gunzip(raw: bytes, limit: int, url: str, path: str) -> bytes:
    # wbits 16 + MAX_WBITS: gzip framing; max_length bounds the output, not the input.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = d.decompress(raw, limit + 1)
        if len(data) > limit:
            raise _too_large(path, limit)
        if not d.eof or d.unconsumed_tail or d.unused_data:
            raise SourceError(f"{url}: truncated or trailing gzip data", field=path)
    except (zlib.error, gzip.BadGzipFile) as e:
        raise SourceError(f"{url}: invalid gzip body: {e}", field=path) from None
    return data


def open_source(location: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Source:
    """A source for ``location``: an ``http(s)://`` prefix or a directory path."""
    scheme = urllib.parse.urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        return HttpSource(location, timeout=timeout)
    if scheme == "file":
        return DirectorySource(urllib.parse.unquote(urllib.parse.urlsplit(location).path))
    if "://" in location:
        raise SourceError(
            f"{location}: unsupported URL scheme {scheme!r} (use http, https or a directory)"
        )
    return DirectorySource(location)


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_BUNDLE_BYTES",
    "MAX_CHECKPOINT_BYTES",
    "MAX_TILE_BYTES",
    "DirectorySource",
    "HttpSource",
    "NotFoundError",
    "Source",
    "SourceError",
    "max_size",
    "open_source",
]
