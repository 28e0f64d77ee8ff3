"""The ``--state`` file of ``ledger-verify``: what a later run needs to check only new entries.

docs/spec.md, "Verification procedure", step 7: store the signed checkpoint (its
exact bytes) and, to resume, the replayed state and the compact range of the tree.
The file is JSON (UTF-8), written atomically (a temporary file in the same
directory, flushed to disk, then renamed over the old one), so that a crash
leaves either the old state or the new one::

    {
      "format": "endorsement-ledger/verifier-state/v1",
      "origin": "ledger.example.org/paris-call",
      "checkpoint": "<the signed checkpoint, verbatim>",
      "size": 70000,
      "root": "<hex>",
      "tiles": [["<hex>", ...], ...],
      "replay": {...}
    }

``tiles[L]`` holds the hashes of the rightmost, incomplete tile at level ``L``
(``floor(size / 256**L) mod 256`` hashes): a compact range of the tree at tile
granularity, from which the root is recomputed on loading (and compared with the
stored root) and onto which new leaves are appended. ``replay`` is
:meth:`ledger.state.MemoryState.to_dict`. The state is only as trustworthy as the
file: keep it where others cannot write.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ledger.encoding import parse_hex32
from ledger.errors import FormatError
from ledger.state import MemoryState

FORMAT = "endorsement-ledger/verifier-state/v1"


class StateError(FormatError):
    """The state file cannot be used: not one, damaged, or for another log."""

    code = "bad_state"


@dataclass(slots=True)
class VerifierState:
    """The last verified checkpoint of one log and everything needed to continue."""

    origin: str
    checkpoint: bytes  # the signed checkpoint, exactly as fetched
    size: int
    root: bytes
    tiles: list[list[bytes]]
    replay: MemoryState

    def to_doc(self) -> dict[str, Any]:
        """The state as JSON-ready data."""
        return {
            "format": FORMAT,
            "origin": self.origin,
            "checkpoint": self.checkpoint.decode("utf-8"),
            "size": self.size,
            "root": self.root.hex(),
            "tiles": [[h.hex() for h in level] for level in self.tiles],
            "replay": self.replay.to_dict(),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_doc(), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes | str) -> VerifierState:
        """Parse a state file; raise StateError (field ``state``) if it is not one."""
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StateError(f"state file is not JSON: {e}", field="state") from None
        return cls.from_doc(doc)

    @classmethod
    def from_doc(cls, doc: object) -> VerifierState:
        """The state of parsed JSON; raise StateError if it is not one."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise StateError(
                "not a verifier state file",
                field="format",
                expected=FORMAT,
                found=doc.get("format") if isinstance(doc, dict) else type(doc).__name__,
            )
        size = doc.get("size")
        # JSON numbers are strictly non-negative integers here: int() would take 3.7,
        # true or "12", and overflow on 1e999.
        if type(size) is not int or size < 0:
            raise StateError(
                "state file is damaged", field="size", expected="an integer >= 0", found=size
            )
        try:
            tiles = [[parse_hex32(h, field="tiles") for h in level] for level in doc["tiles"]]
            state = cls(
                origin=str(doc["origin"]),
                checkpoint=str(doc["checkpoint"]).encode("utf-8"),
                size=size,
                root=parse_hex32(doc["root"], field="root"),
                tiles=tiles,
                replay=MemoryState.from_dict(doc["replay"]),
            )
        except FormatError as e:
            raise StateError(f"state file is damaged: {e}", field="state") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StateError(f"state file is incomplete or damaged: {e!r}", field="state") from None
        if state.replay.size != state.size or state.replay.origin != state.origin:
            raise StateError(
                "state file is inconsistent: replay and checkpoint differ",
                field="replay",
                expected=(state.origin, state.size),
                found=(state.replay.origin, state.replay.size),
            )
        return state


def load_state(path: str | os.PathLike[str]) -> VerifierState | None:
    """The state saved at ``path``, or None if there is no such file.

    Raises OSError if the file exists but cannot be read, FormatError if it is not
    a state file (StateError).
    """
    try:
        # Text, not bytes: json reads str, and one copy of a large file is enough.
        with open(path, encoding="utf-8") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        raise StateError(f"state file is not UTF-8: {e}", field="state") from None
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as e:
        raise StateError(f"state file is not JSON: {e}", field="state") from None
    del data  # tens of MB at a million entries: free them before building the state
    return VerifierState.from_doc(doc)


def write_atomically(
    path: str | os.PathLike[str], data: bytes | Callable[[BinaryIO], None]
) -> None:
    """Replace ``path`` by ``data`` (or what ``data(file)`` writes): never a
    half-written file, even after a crash."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_state(path: str | os.PathLike[str], state: VerifierState) -> None:
    """Write ``state`` to ``path`` atomically."""
    doc = state.to_doc()

    def write(f: BinaryIO) -> None:
        # json.dumps is C, json.dump pure Python (five times slower here); the text is
        # encoded in chunks on the way to the file, never held as bytes whole.
        text = io.TextIOWrapper(f, encoding="utf-8")
        text.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        text.write("\n")
        text.flush()
        text.detach()

    write_atomically(path, write)


__all__ = ["FORMAT", "StateError", "VerifierState", "load_state", "save_state", "write_atomically"]
