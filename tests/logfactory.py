"""Build valid logs of any size, with real signed records of every type, for tests.

A :class:`LogFactory` plays both sides: signatories (deterministic Ed25519 keys
derived from labels) sign records, and the log sequences them into entries
(index, ``prev`` link, integration time), keeps the Merkle tree and signs
checkpoints with its log key. :meth:`LogFactory.write` lays the log out as a
static C2SP tlog-tiles directory (``checkpoint``, ``tile/<L>/...``,
``tile/entries/...``), the layout the service and mirrors serve, so any reader of
that layout (the verifier, a mirror) can be tested against it.

Typical use::

    f = LogFactory()
    f.grow(1000)                 # a realistic mix of every record type
    f.write(tmp_path / "log")    # checkpoint + tiles + bundles
    f.log_key.vkey               # what the verifier must be given

and, to build particular histories, the record-level methods (:meth:`register`,
:meth:`statement`, :meth:`endorse`, :meth:`withdraw`, :meth:`rotate`,
:meth:`revoke`) or :meth:`append_record` / :meth:`append_entry_bytes` for
deliberately bad entries. Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.core import merkle, tiles
from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.entry import ZERO_HASH, Entry
from ledger.core.note import Ed25519NoteSigner, sign_note
from ledger.core.records import (
    Body,
    Endorsement,
    Kind,
    RecordSignature,
    Registration,
    Revocation,
    Rotation,
    SignedRecord,
    Statement,
    Withdrawal,
    encode_body,
)

ORIGIN = "ledger.example.org/test"
#: 2026-01-01T00:00:00Z in Unix milliseconds.
BASE_TIME_MS = 1_767_225_600_000
KINDS = tuple(Kind)


def private_key(label: str) -> Ed25519PrivateKey:
    """A deterministic test key: the seed is SHA-256 of ``label``."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass
class LogKey:
    """The log's checkpoint key; its name is the origin."""

    origin: str
    key: Ed25519PrivateKey

    @classmethod
    def for_origin(cls, origin: str = ORIGIN, label: str = "log key") -> LogKey:
        return cls(origin, private_key(f"{label} {origin}"))

    @property
    def signer(self) -> Ed25519NoteSigner:
        return Ed25519NoteSigner(self.origin, self.key)

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def sign(self, size: int, root: bytes, origin: str | None = None) -> bytes:
        """A signed checkpoint (optionally claiming another origin, for damaged logs)."""
        cp = Checkpoint(origin or self.origin, size, root)
        if cp.origin != self.origin:  # sign_checkpoint refuses that, rightly
            return sign_note(cp.to_text(), [self.signer])
        return sign_checkpoint(cp, self.signer)


@dataclass
class Member:
    """A signatory as the factory tracks it: its keys, newest (current) last."""

    number: int  # registration order: members[number] is this one
    id: bytes
    kind: Kind
    keys: list[Ed25519PrivateKey]
    active: bool = True
    revoked: set[int] = field(default_factory=set)  # indexes into keys

    @property
    def current(self) -> Ed25519PrivateKey:
        return self.keys[-1]


def sign_record(body: Body, signers: Sequence[Ed25519PrivateKey]) -> SignedRecord:
    body_bytes = encode_body(body)
    sigs = tuple(RecordSignature(public_bytes(k), k.sign(body_bytes)) for k in signers)
    return SignedRecord(body, body_bytes, sigs)


class LogFactory:
    """A log under construction: records, entries, tree and checkpoints."""

    def __init__(
        self,
        origin: str = ORIGIN,
        *,
        seed: str = "factory",
        log_key: LogKey | None = None,
        start_ms: int = BASE_TIME_MS,
        step_ms: int = 1000,
    ) -> None:
        self.origin = origin
        self.seed = seed
        self.log_key = log_key or LogKey.for_origin(origin)
        self.time_ms = start_ms
        self.step_ms = step_ms
        self.entries: list[bytes] = []
        self.store = merkle.MemoryHashStore()
        self.members: list[Member] = []
        self.active: list[Member] = []  # members whose current key is not revoked
        self.statements: list[bytes] = []
        self.active_pairs: set[tuple[int, bytes]] = set()  # (member number, statement)
        self._keys_made = 0
        self._written: dict[Path, int] = {}

    # --- sequencing ------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.entries)

    @property
    def signed_at(self) -> int:
        """The ``signed_at`` the next record gets: the next entry's time, in seconds."""
        return (self.time_ms + self.step_ms) // 1000

    def append_record(self, record: SignedRecord, *, time_ms: int | None = None) -> int:
        """Sequence ``record`` as the next entry; return its index."""
        self.time_ms = self.time_ms + self.step_ms if time_ms is None else time_ms
        prev = (
            self.store.read_hashes([merkle.stored_hash_index(0, self.size - 1)])[0]
            if (self.entries)
            else ZERO_HASH
        )
        entry = Entry(self.size, prev, self.time_ms, record)
        return self.append_entry_bytes(entry.encode())

    def append_entry_bytes(self, data: bytes) -> int:
        """Append raw entry bytes as they are (to build damaged logs)."""
        self.entries.append(data)
        self.store.append(merkle.leaf_hash(data))
        return self.size - 1

    def leaf_hash(self, index: int) -> bytes:
        return self.store.read_hashes([merkle.stored_hash_index(0, index)])[0]

    def root(self, size: int | None = None) -> bytes:
        return merkle.tree_hash(self.size if size is None else size, self.store)

    def checkpoint(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return self.log_key.sign(size, self.root(size))

    # --- keys and records ------------------------------------------------------------

    def new_key(self) -> Ed25519PrivateKey:
        self._keys_made += 1
        return private_key(f"{self.seed} {self.origin} key {self._keys_made}")

    def register(self, kind: Kind | None = None, *, name: str | None = None) -> Member:
        key = self.new_key()
        pub = public_bytes(key)
        n = len(self.members)
        kind = kind or KINDS[n % len(KINDS)]
        body = Registration(
            self.origin,
            self.signed_at,
            pub,
            name or f"Signatory {n}",
            kind,
            country="FR" if n % 3 == 0 else None,
            domain=f"s{n}.example.org" if n % 2 == 0 else None,
        )
        self.append_record(sign_record(body, [key]))
        member = Member(n, hashlib.sha256(pub).digest(), kind, [key])
        self.members.append(member)
        self.active.append(member)
        return member

    def statement(self, authors: Sequence[Member], title: str | None = None) -> bytes:
        n = len(self.statements)
        body = Statement(
            self.origin,
            self.signed_at,
            title or f"Statement {n}",
            tuple(m.id for m in authors),
            f"Text of statement {n}.\nSecond line.\n",
        )
        record = sign_record(body, [m.current for m in authors])
        self.append_record(record)
        self.statements.append(record.record_id)
        return record.record_id

    def endorse(self, member: Member, statement: bytes, comment: str | None = None) -> None:
        body = Endorsement(self.origin, self.signed_at, member.id, statement, comment)
        self.append_record(sign_record(body, [member.current]))
        self.active_pairs.add((member.number, statement))

    def withdraw(self, member: Member, statement: bytes) -> None:
        body = Withdrawal(self.origin, self.signed_at, member.id, statement)
        self.append_record(sign_record(body, [member.current]))
        self.active_pairs.discard((member.number, statement))

    def rotate(self, member: Member) -> None:
        new = self.new_key()
        body = Rotation(self.origin, self.signed_at, member.id, public_bytes(new))
        self.append_record(sign_record(body, [member.current, new]))
        member.keys.append(new)

    def revoke(self, member: Member, key_number: int = -1, *, by_current: bool = False) -> None:
        """Revoke one of the member's keys, signed by that key or by the current one."""
        key_number %= len(member.keys)
        key = member.keys[key_number]
        body = Revocation(self.origin, self.signed_at, member.id, public_bytes(key), "compromised")
        self.append_record(sign_record(body, [member.current if by_current else key]))
        member.revoked.add(key_number)
        if key_number == len(member.keys) - 1 and member.active:
            member.active = False
            self.active.remove(member)

    # --- a realistic mix ---------------------------------------------------------------

    def grow(self, n: int, *, registrations: float = 0.04) -> LogFactory:
        """Append ``n`` valid entries of every record type, mostly endorsements.

        About ``registrations`` of them register new signatories, 2 % are statements,
        1.5 % rotations, 0.5 % revocations; the rest endorse and withdraw.
        """
        rng = random.Random(f"{self.seed} {self.size}")
        target = self.size + n
        r_stmt = registrations + 0.02
        r_rot = r_stmt + 0.015
        r_rev = r_rot + 0.005
        active = self.active
        while self.size < target:
            r = rng.random()
            if len(active) < 3 or r < registrations:
                self.register()
            elif not self.statements or r < r_stmt:
                authors = rng.sample(active, k=min(len(active), rng.choice((1, 1, 2, 3))))
                self.statement(authors)
            elif r < r_rot:
                self.rotate(rng.choice(active))
            elif r < r_rev:
                m = rng.choice(active)
                if len(m.keys) > 1 and 0 not in m.revoked:
                    self.revoke(m, 0, by_current=rng.random() < 0.5)  # a former key
                elif len(active) > 5:
                    self.revoke(m)  # its current key: the signatory is deactivated
                else:
                    self.register()
            else:
                m = rng.choice(active)
                st = rng.choice(self.statements)
                if (m.number, st) in self.active_pairs:
                    self.withdraw(m, st)
                else:
                    self.endorse(m, st, "Endorsed." if r > 0.95 else None)
        return self

    # --- writing the static layout ----------------------------------------------------

    def write(self, directory: str | Path, size: int | None = None) -> Path:
        """Write the log at ``size`` (default: all entries) as a tlog-tiles directory.

        Full tiles and bundles already written by an earlier call are kept (they are
        immutable); partial ones are added; the checkpoint is replaced last.
        """
        root_dir = Path(directory)
        size = self.size if size is None else size
        done = self._written.get(root_dir, 0) if root_dir.exists() else 0
        for bundle in tiles.bundles_for_size(size):
            if bundle.n < done // 256:
                continue
            first = bundle.n * 256
            _put(
                root_dir / bundle.path,
                tiles.encode_bundle(self.entries[first : first + bundle.width]),
            )
        for tile in tiles.new_tiles(done, size) if done <= size else tiles.tiles_for_size(size):
            _put(root_dir / tile.path, tiles.read_tile_data(tile, self.store))
        _put(root_dir / "checkpoint", self.checkpoint(size))
        self._written[root_dir] = max(done, size)
        return root_dir


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_static_log(
    directory: str | Path,
    entries: Sequence[bytes],
    log_key: LogKey | None,
    *,
    origin: str | None = None,
    checkpoint: bytes | None = None,
) -> Path:
    """Lay out arbitrary entry bytes as a correctly hashed tlog-tiles log.

    The tree, tiles and checkpoint (signed by ``log_key``, unless a ready
    ``checkpoint`` is given) are honest for *these* entries: what a log operator who
    dropped, duplicated or reordered entries would publish.
    """
    store = merkle.MemoryHashStore()
    for e in entries:
        store.append(merkle.leaf_hash(e))
    root_dir = Path(directory)
    for bundle in tiles.bundles_for_size(len(entries)):
        first = bundle.n * 256
        _put(root_dir / bundle.path, tiles.encode_bundle(entries[first : first + bundle.width]))
    for tile in tiles.tiles_for_size(len(entries)):
        _put(root_dir / tile.path, tiles.read_tile_data(tile, store))
    if checkpoint is None:
        assert log_key is not None
        cp = Checkpoint(origin or log_key.origin, len(entries), store.root())
        checkpoint = sign_checkpoint(cp, log_key.signer)
    _put(root_dir / "checkpoint", checkpoint)
    return root_dir


__all__ = [
    "BASE_TIME_MS",
    "ORIGIN",
    "LogFactory",
    "LogKey",
    "Member",
    "private_key",
    "public_bytes",
    "write_static_log",
]
