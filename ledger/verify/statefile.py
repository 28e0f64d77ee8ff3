"""The ``--state`` file of ``ledger-verify``: what a later run needs to check only new entries.

docs/spec.md, "Verification procedure", step 7: store the signed checkpoint (its
exact bytes) and, to resume, the replayed state and the compact range of the tree.
The file is written with :func:`ledger.durable.write_atomic` (a temporary file in the
same directory, flushed to disk, renamed over the old one, the directory flushed), so
that a crash leaves either the old state or the new one. Format
``endorsement-ledger/verifier-state/v2``, byte by byte:

1. **Header**: one line of JSON (UTF-8, no newline inside, ending ``\n``; at most
   :data:`MAX_HEADER` bytes), an object with exactly these members::

       {"format": "endorsement-ledger/verifier-state/v2",
        "origin": "ledger.example.org/paris-call",
        "checkpoint": "<the signed checkpoint, verbatim>",
        "size": 70000,
        "root": "<64 lowercase hex digits>",
        "tiles": [["<hex>", ...], ...],
        "body_length": 1234567}

   ``size`` and ``body_length`` are JSON integers >= 0 (not floats, booleans or
   strings). ``tiles[L]`` holds the hashes of the rightmost, incomplete tile at
   level ``L`` (``floor(size / 256**L) mod 256`` hashes, so at most 255): a compact
   range of the tree at tile granularity, from which the root is recomputed on
   loading (and compared with the stored root) and onto which new leaves are
   appended.
2. **Body**: exactly ``body_length`` bytes, the replayed state
   (:mod:`ledger.verify.statecodec`, which documents its layout: fixed-width
   little-endian integers, raw 32-byte ids and keys, the pair table's two uint64
   arrays last, copied straight from and into the arrays).
3. **Trailer**: 32 bytes, the SHA-256 of everything before it (header line and
   body). The file ends there.

Loading checks the header strictly, that the file is exactly header + body +
trailer long, and the SHA-256, before decoding the body; then decodes the body
defensively all the same (the hash proves only that the file is what a writer
wrote). Any damage is a :class:`StateError` naming the field; so is a file of
another format (the JSON v1 of release 0.1.0's development is no longer read:
verify the log once more without ``--state`` to make a v2 file). The state is
only as trustworthy as the file: keep it where others cannot write.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from typing import Any, BinaryIO

from ledger.core.encoding import parse_hex32
from ledger.core.errors import FormatError
from ledger.core.state import MemoryState
from ledger.durable import write_atomic
from ledger.verify import statecodec
from ledger.verify.statecodec import Reader

FORMAT = "endorsement-ledger/verifier-state/v2"
MAX_HEADER = 1 << 20  # bytes: the tiles take at most 8 levels of 255 hashes (~140 kB)
_DIGEST = 32  # bytes of SHA-256 in the trailer
_HEADER_KEYS = frozenset(("format", "origin", "checkpoint", "size", "root", "tiles", "body_length"))


class StateError(FormatError):
    """The state file cannot be used: not one, damaged, or for another log."""

    code = "bad_state"


def _of_format(doc: object) -> dict[str, Any]:
    """``doc`` if it is a JSON object of :data:`FORMAT`; else StateError."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(
            "not a verifier state file",
            field="format",
            expected=FORMAT,
            found=doc.get("format") if isinstance(doc, dict) else type(doc).__name__,
        )
    return doc


def _damaged(field: str, expected: object, found: object) -> StateError:
    return StateError("state file is damaged", field=field, expected=expected, found=found)


@dataclass(slots=True)
class VerifierState:
    """The last verified checkpoint of one log and everything needed to continue."""

    origin: str
    checkpoint: bytes  # the signed checkpoint, exactly as fetched
    size: int
    root: bytes
    tiles: list[list[bytes]]
    replay: MemoryState

    def header(self, body_length: int) -> bytes:
        """The header line (with its ``\n``) of a v2 file whose body has that length."""
        doc = {
            "format": FORMAT,
            "origin": self.origin,
            "checkpoint": self.checkpoint.decode("utf-8"),
            "size": self.size,
            "root": self.root.hex(),
            "tiles": [[h.hex() for h in level] for level in self.tiles],
            "body_length": body_length,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    def write_to(self, f: BinaryIO) -> None:
        """Write the state file (v2) to ``f``: header, body and trailer, each piece
        hashed on its way (the body is never joined into one bytes object)."""
        body = statecodec.chunks(self.replay)
        header = self.header(sum(c.nbytes for c in body))
        digest = hashlib.sha256(header)
        f.write(header)
        for chunk in body:
            digest.update(chunk)
            f.write(chunk)
        f.write(digest.digest())

    def to_bytes(self) -> bytes:
        """The state file (v2) as bytes: what :func:`save_state` writes."""
        out = io.BytesIO()
        self.write_to(out)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> VerifierState:
        """Parse a state file; raise StateError if it is not one."""
        return cls.read_from(io.BytesIO(data), len(data))

    @classmethod
    def read_from(cls, f: Reader, file_size: int) -> VerifierState:
        """Read a state file of ``file_size`` bytes from ``f``; raise StateError if it
        is not one (FormatError and OSError are the only other errors)."""
        line = f.read(MAX_HEADER)
        end = line.find(b"\n")
        if end < 0:
            raise StateError(
                "not a verifier state file: no header line",
                field="header",
                expected=f"a line of at most {MAX_HEADER} bytes",
            )
        doc = _json(line[: end + 1], "header")
        header, body_length = cls._from_header(doc)
        expected = end + 1 + body_length + _DIGEST
        if expected != file_size:
            raise StateError(
                "state file is damaged: truncated or with extra bytes",
                field="body_length",
                expected=expected,
                found=file_size,
            )
        digest = hashlib.sha256(line[: end + 1])
        # What is already read of the body, then the rest straight from the file.
        rest = _Chain(line[end + 1 :], f)
        try:
            raw = statecodec.read_raw(rest, body_length, digest.update)
            trailer = rest.read(_DIGEST)
        except FormatError as e:
            raise StateError(f"state file is damaged: {e}", field="body") from None
        if trailer != digest.digest():
            raise _damaged("sha256", digest.hexdigest(), trailer.hex())
        try:
            header.replay = statecodec.decode_raw(raw)
        except FormatError as e:
            raise StateError(f"state file is damaged: {e}", field="body") from None
        header._check_replay()
        return header

    @classmethod
    def _from_header(cls, doc: object) -> tuple[VerifierState, int]:
        """The state a v2 header describes (its replay still empty), and the body length."""
        doc = _of_format(doc)
        if doc.keys() != _HEADER_KEYS:
            raise _damaged("header", sorted(_HEADER_KEYS), sorted(map(str, doc)))
        for name in ("size", "body_length"):
            # JSON integers >= 0: int() would take 3.7, true or "12", and overflow on 1e999.
            if type(doc[name]) is not int or doc[name] < 0:
                raise _damaged(name, "an integer >= 0", doc[name])
        for name in ("origin", "checkpoint", "root"):
            if type(doc[name]) is not str:
                raise _damaged(name, "a string", doc[name])
        tiles = doc["tiles"]
        if type(tiles) is not list or not all(
            type(level) is list and len(level) < 256 and all(type(h) is str for h in level)
            for level in tiles
        ):
            raise _damaged("tiles", "lists of at most 255 hashes", str(tiles)[:100])
        try:
            state = cls(
                origin=doc["origin"],
                checkpoint=doc["checkpoint"].encode("utf-8"),
                size=doc["size"],
                root=parse_hex32(doc["root"], field="root"),
                tiles=[[parse_hex32(h, field="tiles") for h in level] for level in tiles],
                replay=MemoryState(doc["origin"]),
            )
        except FormatError as e:
            raise StateError(f"state file is damaged: {e}", field=e.field or "header") from None
        except UnicodeEncodeError as e:  # a lone surrogate escaped in the JSON
            raise StateError(f"state file is damaged: {e}", field="checkpoint") from None
        return state, doc["body_length"]

    def _check_replay(self) -> None:
        if self.replay.size != self.size or self.replay.origin != self.origin:
            raise StateError(
                "state file is inconsistent: replay and checkpoint differ",
                field="replay",
                expected=(self.origin, self.size),
                found=(self.replay.origin, self.replay.size),
            )


class _Chain:
    """Bytes already read, then the rest of a file: a :class:`ledger.verify.statecodec.Reader`."""

    def __init__(self, head: bytes, f: Reader) -> None:
        self._head = memoryview(head)
        self._f = f

    def read(self, n: int = -1, /) -> bytes:
        if not self._head:
            return self._f.read(n)
        if n < 0:
            out = bytes(self._head) + self._f.read()
        elif n <= len(self._head):
            out = bytes(self._head[:n])
        else:
            out = bytes(self._head) + self._f.read(n - len(self._head))
        self._head = self._head[len(out) :] if len(out) < len(self._head) else memoryview(b"")
        return out

    def readinto(self, buffer: memoryview, /) -> int:
        if not self._head:
            return self._f.readinto(buffer)
        n = min(len(self._head), buffer.nbytes)
        buffer[:n] = self._head[:n]
        self._head = self._head[n:]
        return n


def _json(data: bytes, field: str) -> Any:
    """Parsed JSON; StateError naming ``field`` if it is not (strict UTF-8)."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise StateError(f"state file is not UTF-8: {e}", field=field) from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, or too many digits
        raise StateError(f"state file is not JSON: {e}", field=field) from None


def load_state(path: str | os.PathLike[str]) -> VerifierState | None:
    """The state saved at ``path``, or None if there is no such file.

    Raises OSError if the file exists but cannot be read, FormatError if it is not
    a state file (StateError).
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with f:
        return VerifierState.read_from(f, os.fstat(f.fileno()).st_size)


def save_state(path: str | os.PathLike[str], state: VerifierState) -> None:
    """Write ``state`` to ``path`` durably (``ledger.durable``: the old file or the new
    one, even after a crash), readable by its owner only; format v2."""
    write_atomic(path, state.write_to, mode=0o600)


__all__ = [
    "FORMAT",
    "StateError",
    "VerifierState",
    "load_state",
    "save_state",
]
