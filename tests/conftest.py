"""Shared fixtures: databases to test against, and signed records from seeded keys.

``database_url`` runs a test once on SQLite (a file in ``tmp_path``) and once on
PostgreSQL when ``LEDGER_TEST_DATABASE_URL`` is set (``.ci/run`` sets it); without
it the PostgreSQL run is skipped, saying so. Each PostgreSQL test gets a schema of
its own (``search_path`` set through the connection URL), dropped afterwards, so the
tests can run again and again on one database.

:class:`Maker` builds complete, correctly signed records whose keys are derived
from labels (``maker.register("alice")``; the signatory ``alice`` then signs with
its current key, which ``maker.rotate`` changes), and :func:`log_signer` is the log
key of the test origin.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import create_engine, make_url, text

from api.storage.sql import SqlStorage
from keys.signer import NoteSigner
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

PG_ENV = "LEDGER_TEST_DATABASE_URL"
ORIGIN = "ledger.example.org/test"
#: 2026-01-01T00:00:00Z: the first signed_at of a Maker.
T0 = 1_767_225_600
SKIP_PG = f"PostgreSQL tests need {PG_ENV}=postgresql+psycopg://user@host:port/database"


# --- databases -----------------------------------------------------------------------


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL; yields a URL whose connections use it."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database URL with nothing in it yet: SQLite, then PostgreSQL if configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'ledger.db'}"
        return
    base = pg_base_url()
    if base is None:
        pytest.skip(SKIP_PG)
    with pg_schema(base) as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema URL; skips without LEDGER_TEST_DATABASE_URL."""
    base = pg_base_url()
    if base is None:
        pytest.skip(SKIP_PG)
    with pg_schema(base) as url:
        yield url


# --- keys and records ------------------------------------------------------------------


def private_key(label: str) -> Ed25519PrivateKey:
    """A deterministic key: its seed is SHA-256 of ``test key <label>``."""
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"test key {label}".encode()).digest()
    )


def public_key(label: str) -> bytes:
    return private_key(label).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def log_signer(origin: str = ORIGIN, label: str = "log") -> NoteSigner:
    """The log key of ``origin`` (a seeded key, named after the origin)."""
    return NoteSigner(private_key(f"{label} {origin}"), origin)


class Maker:
    """Builds signed records; signatories and keys are named by labels.

    A signatory is named by the label of the key it registered with; it signs with
    its current key, which :meth:`rotate` changes (assuming the log accepts the
    rotation). Each record gets a ``signed_at`` one second after the previous, and
    :attr:`time_ms` is an integration time after all of them.
    """

    def __init__(self, origin: str = ORIGIN, start: int = T0) -> None:
        self.origin = origin
        self.t = start
        self.current: dict[str, str] = {}

    def sid(self, label: str) -> bytes:
        """The signatory id of ``label``: the hash of the key it registered with."""
        return hashlib.sha256(public_key(label)).digest()

    def tick(self) -> int:
        self.t += 1
        return self.t

    @property
    def time_ms(self) -> int:
        return (self.t + 1) * 1000

    def sign(self, body: Body, signers: Sequence[str]) -> SignedRecord:
        data = encode_body(body)
        sigs = tuple(RecordSignature(public_key(s), private_key(s).sign(data)) for s in signers)
        return SignedRecord(body, data, sigs)

    def _signer(self, label: str, signer: str | None) -> str:
        return signer if signer is not None else self.current.get(label, label)

    def register(
        self,
        label: str,
        *,
        name: str | None = None,
        kind: Kind = Kind.INDIVIDUAL,
        country: str | None = None,
        domain: str | None = None,
        log: str | None = None,
        signed_at: int | None = None,
    ) -> SignedRecord:
        body = Registration(
            log or self.origin,
            signed_at if signed_at is not None else self.tick(),
            public_key(label),
            name or f"Signatory {label}",
            kind,
            country,
            domain,
        )
        self.current.setdefault(label, label)
        return self.sign(body, [label])

    def statement(
        self,
        authors: Sequence[str],
        *,
        title: str = "A statement",
        text: str = "We state this.\n",
        signers: Sequence[str] | None = None,
    ) -> SignedRecord:
        body = Statement(self.origin, self.tick(), title, tuple(self.sid(a) for a in authors), text)
        keys = signers if signers is not None else [self._signer(a, None) for a in authors]
        return self.sign(body, keys)

    def endorse(
        self,
        label: str,
        statement: bytes,
        *,
        comment: str | None = None,
        signer: str | None = None,
        signed_at: int | None = None,
    ) -> SignedRecord:
        body = Endorsement(
            self.origin,
            signed_at if signed_at is not None else self.tick(),
            self.sid(label),
            statement,
            comment,
        )
        return self.sign(body, [self._signer(label, signer)])

    def withdraw(self, label: str, statement: bytes, *, signer: str | None = None) -> SignedRecord:
        body = Withdrawal(self.origin, self.tick(), self.sid(label), statement)
        return self.sign(body, [self._signer(label, signer)])

    def rotate(self, label: str, new_key: str, *, signer: str | None = None) -> SignedRecord:
        body = Rotation(self.origin, self.tick(), self.sid(label), public_key(new_key))
        record = self.sign(body, [self._signer(label, signer), new_key])
        self.current[label] = new_key
        return record

    def revoke(
        self, label: str, key: str, *, signer: str | None = None, reason: str | None = None
    ) -> SignedRecord:
        body = Revocation(self.origin, self.tick(), self.sid(label), public_key(key), reason)
        return self.sign(body, [self._signer(label, signer)])


@pytest.fixture
def maker() -> Maker:
    return Maker()


@pytest.fixture
def signer() -> NoteSigner:
    return log_signer()


@pytest.fixture
def storage(database_url: str, signer: NoteSigner) -> Iterator[SqlStorage]:
    """An initialised, empty log of ORIGIN on each backend."""
    s = SqlStorage(database_url, origin=ORIGIN)
    s.init_log()
    yield s
    s.close()
