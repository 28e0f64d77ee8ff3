"""Trust policies: which logs to trust and which witness cosignatures to require (C2SP tlog-policy).

A policy file (c2sp.org/tlog-policy, "Policy file syntax and structure") is lines of
items separated by spaces or tabs; empty lines and lines whose first item starts
with ``#`` are ignored::

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> <k|all|any> <name>...
    quorum <name|none>

A checkpoint is valid under a policy if it is signed by one of the logs and the
witnesses that validly cosigned it (c2sp.org/tlog-cosignature) satisfy the quorum:
a witness is satisfied by its cosignature, a group when at least k of its members
are (``any`` is k = 1, ``all`` is k = n), ``none`` always.

:func:`parse_policy` rejects (``FormatError``): octets other than tab, newline,
0x20-0x7E and 0x80-0xFF; a last line without newline; an unknown keyword or a
wrong number of items; a log vkey that is not Ed25519 (type 0x01) or a witness vkey
that is not an Ed25519 cosigner (type 0x04); two logs or two witnesses with the
same public key; a name defined twice, or defined as ``none``; a group member or
quorum that names nothing defined on an earlier line, or (for members) ``none``;
a name listed as a group member more than once, in one group or across groups
(the spec: "each defined name can be listed as a group member at most once"); a
threshold that is not a canonical decimal in 1..n; no quorum line, or two. Names
and URLs are opaque octets (kept as ``str`` decoded with ``surrogateescape``,
so that they compare as octets); vkeys must be UTF-8. Limits: :data:`MAX_POLICY_SIZE`
bytes, :data:`MAX_ITEMS` logs, witnesses and groups each (the spec asks for 32).

:meth:`Policy.check_quorum` checks a checkpoint note's cosignatures: a
cosignature line by a listed witness (vkey name and key ID) that does not verify
rejects the note (SignatureError, as c2sp.org/signed-note asks); an unmet quorum
raises VerificationError naming the groups and witnesses that are missing.
"""

from __future__ import annotations

import re
from collections.abc import Sized
from dataclasses import dataclass

from ledger.core.checkpoint import Checkpoint, open_checkpoint
from ledger.core.encoding import parse_uint
from ledger.core.errors import FormatError, SignatureError, TooLargeError, VerificationError
from ledger.core.note import CosignatureVerifier, Ed25519Verifier, Note, parse_note, parse_vkey

__all__ = [
    "MAX_ITEMS",
    "MAX_POLICY_SIZE",
    "Group",
    "Policy",
    "Witness",
    "check_quorum",
    "parse_policy",
]

MAX_POLICY_SIZE = 64 * 1024
"""Largest policy file read, in bytes."""
MAX_ITEMS = 256
"""Most logs, witnesses and groups (each) in one policy."""

_NONE = "none"
_BAD_OCTET = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
_SEPARATOR = re.compile(rb"[ \t]+")


@dataclass(frozen=True)
class Witness:
    """A named witness: its cosigner key and optional URL."""

    name: str
    verifier: CosignatureVerifier
    url: str | None = None


@dataclass(frozen=True)
class Group:
    """A group satisfied when at least ``threshold`` of its ``members`` are."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A parsed tlog-policy. ``quorum`` is None for ``quorum none``."""

    logs: tuple[Ed25519Verifier, ...]
    log_urls: tuple[str | None, ...]
    witnesses: tuple[Witness, ...]
    groups: tuple[Group, ...]
    quorum: str | None

    def cosigners(self, note: Note | bytes) -> dict[str, int]:
        """The policy names of the witnesses that validly cosigned ``note``, with timestamps.

        A cosignature line of a listed witness that does not verify raises SignatureError.
        """
        if isinstance(note, bytes):
            note = parse_note(note)
        by_key = {(w.verifier.name, w.verifier.key_id): w for w in self.witnesses}
        found: dict[str, int] = {}
        for sig in note.signatures:
            witness = by_key.get((sig.name, sig.key_id))
            if witness is None:
                continue
            try:
                found[witness.name] = witness.verifier.verify(note.message, sig.signature)
            except SignatureError as e:
                raise SignatureError(
                    f"invalid cosignature by witness {witness.name!r} "
                    f"({sig.name}+{sig.key_id.hex()}): {e.message}",
                    field="signatures",
                ) from None
        return found

    def check_quorum(self, note: Note | bytes) -> None:
        """Raise unless the valid cosignatures of ``note`` satisfy the quorum.

        Every witness the policy lists is a known key, whatever the quorum: its
        cosignature is checked (and an invalid one rejects the note) under
        ``quorum none`` too (docs/spec.md, "Verification procedure", step 1).
        """
        have = set(self.cosigners(note))
        if self.quorum is None:
            return
        groups = {g.name: g for g in self.groups}
        if not _satisfied(self.quorum, have, groups):
            raise VerificationError(
                f"witness quorum not met: {_missing(self.quorum, have, groups)}",
                code="quorum_not_met",
                field="cosignatures",
                found=sorted(have),
            )

    def open_checkpoint(self, data: bytes, origin: str | None = None) -> tuple[Checkpoint, Note]:
        """Verify a signed checkpoint under this policy: a log's signature, then the quorum."""
        cp, note = open_checkpoint(data, self.logs, origin)
        self.check_quorum(note)
        return cp, note


def check_quorum(note: Note | bytes, policy: Policy) -> None:
    """Raise unless ``note`` carries enough valid cosignatures for ``policy``'s quorum."""
    policy.check_quorum(note)


def _satisfied(name: str, have: set[str], groups: dict[str, Group]) -> bool:
    group = groups.get(name)
    if group is None:
        return name in have
    return sum(_satisfied(m, have, groups) for m in group.members) >= group.threshold


def _missing(name: str, have: set[str], groups: dict[str, Group]) -> str:
    """Why ``name`` is not satisfied, naming the unsatisfied members."""
    group = groups.get(name)
    if group is None:
        return f"no valid cosignature from witness {name!r}"
    unmet = [m for m in group.members if not _satisfied(m, have, groups)]
    count = len(group.members) - len(unmet)
    return (
        f"group {name!r} needs {group.threshold} of its {len(group.members)} members "
        f"and has {count} (unmet: {'; '.join(_missing(m, have, groups) for m in unmet)})"
    )


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def parse_policy(data: bytes) -> Policy:
    """Parse a tlog-policy file strictly."""
    if len(data) > MAX_POLICY_SIZE:
        raise TooLargeError(
            f"policy larger than {MAX_POLICY_SIZE} bytes", field="policy", found=len(data)
        )
    bad = _BAD_OCTET.search(data)
    if bad is not None:
        raise FormatError(
            "policy contains a control character other than tab and newline",
            field="policy",
            found=bad.group(),
        )
    if data and not data.endswith(b"\n"):
        raise FormatError("policy must end with a newline", field="policy")
    p = _Parser()
    for number, line in enumerate(data.split(b"\n")[:-1], 1):
        items = _SEPARATOR.split(line.strip(b" \t"))
        if items == [b""] or items[0].startswith(b"#"):
            continue
        try:
            p.line(items)
        except FormatError as e:
            # A new error at raise time (FormatError or TooLargeError: both take these
            # arguments), naming the line, from the item's error.
            error = TooLargeError if isinstance(e, TooLargeError) else FormatError
            raise error(
                f"line {number}: {e.message}",
                code=e.code,
                field=e.field,
                expected=e.expected,
                found=e.found,
            ) from e
    if not p.has_quorum:
        raise FormatError("policy has no quorum line", field="quorum")
    return Policy(tuple(p.logs), tuple(p.log_urls), tuple(p.witnesses), tuple(p.groups), p.quorum)


class _Parser:
    def __init__(self) -> None:
        self.logs: list[Ed25519Verifier] = []
        self.log_urls: list[str | None] = []
        self.witnesses: list[Witness] = []
        self.groups: list[Group] = []
        self.defined: set[str] = set()
        self.members: set[str] = set()  # names already listed in some group
        self.has_quorum = False
        self.quorum: str | None = None  # None for "quorum none"

    def line(self, items: list[bytes]) -> None:
        keyword, args = _text(items[0]), items[1:]
        if keyword == "log" and len(args) in (1, 2):
            self.log(args)
        elif keyword == "witness" and len(args) in (2, 3):
            self.witness(args)
        elif keyword == "group" and len(args) >= 3:
            self.group(args)
        elif keyword == "quorum" and len(args) == 1:
            self.set_quorum(_text(args[0]))
        elif keyword in ("log", "witness", "group", "quorum"):
            raise FormatError(f"wrong number of items on a {keyword} line", field=keyword)
        else:
            raise FormatError("unknown keyword", field="policy", found=keyword[:100])

    def log(self, args: list[bytes]) -> None:
        verifier = _vkey(args[0], "log")
        if not isinstance(verifier, Ed25519Verifier):
            raise FormatError("a log key must be an Ed25519 vkey (type 0x01)", field="log")
        if any(v.public_key == verifier.public_key for v in self.logs):
            raise FormatError("duplicate log key", field="log", found=verifier.vkey)
        _limit(self.logs, "logs")
        self.logs.append(verifier)
        self.log_urls.append(_text(args[1]) if len(args) == 2 else None)

    def witness(self, args: list[bytes]) -> None:
        name = self.check_new_name(args[0], "witness")
        verifier = _vkey(args[1], "witness")
        if not isinstance(verifier, CosignatureVerifier):
            raise FormatError(
                "a witness key must be an Ed25519 cosigner vkey (type 0x04)", field="witness"
            )
        if any(w.verifier.public_key == verifier.public_key for w in self.witnesses):
            raise FormatError("duplicate witness key", field="witness", found=verifier.vkey)
        _limit(self.witnesses, "witnesses")
        self.defined.add(name)
        self.witnesses.append(Witness(name, verifier, _text(args[2]) if len(args) == 3 else None))

    def group(self, args: list[bytes]) -> None:
        name = self.check_new_name(args[0], "group")
        members = tuple(_text(m) for m in args[2:])
        for m in members:
            if m == _NONE:
                raise FormatError("'none' cannot be a group member", field="group")
            if m not in self.defined:
                raise FormatError(
                    "group member is not defined on an earlier line", field="group", found=m
                )
            if m in self.members:
                raise FormatError(
                    "name is already listed as a group member", field="group", found=m
                )
            self.members.add(m)
        spec = _text(args[1])
        if spec == "all":
            threshold = len(members)
        elif spec == "any":
            threshold = 1
        else:
            threshold = parse_uint(spec, field="threshold")
            if not 1 <= threshold <= len(members):
                raise FormatError(
                    "group threshold must be between 1 and the number of members",
                    field="threshold",
                    expected=f"1..{len(members)}",
                    found=threshold,
                )
        _limit(self.groups, "groups")
        self.defined.add(name)  # only now: a group cannot list itself
        self.groups.append(Group(name, threshold, members))

    def set_quorum(self, name: str) -> None:
        if self.has_quorum:
            raise FormatError("policy has more than one quorum line", field="quorum")
        if name != _NONE and name not in self.defined:
            raise FormatError(
                "quorum names nothing defined on an earlier line", field="quorum", found=name
            )
        self.has_quorum = True
        self.quorum = None if name == _NONE else name

    def check_new_name(self, raw: bytes, what: str) -> str:
        name = _text(raw)
        if name == _NONE:
            raise FormatError(f"a {what} cannot be named 'none'", field=what)
        if name in self.defined:
            raise FormatError("name defined twice", field=what, found=name)
        return name


def _vkey(raw: bytes, what: str) -> Ed25519Verifier | CosignatureVerifier:
    try:
        vkey = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("vkey is not valid UTF-8", field=what) from None
    return parse_vkey(vkey)


def _limit(items: Sized, what: str) -> None:
    if len(items) >= MAX_ITEMS:
        raise TooLargeError(f"more than {MAX_ITEMS} {what}", field="policy")
