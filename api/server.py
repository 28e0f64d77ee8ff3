"""Starting the service: data directory, log key, database checks, then uvicorn.

:func:`prepare` does everything a process needs before it serves, and refuses to
start (:class:`StartupError`, with a message saying what to do) rather than serve a
log it cannot vouch for:

1. create the data directory (mode 0700) if missing;
2. load the log key, or create it on first start (``keys.logkey``: mode 0600,
   named after the origin);
3. open the database and migrate it to the newest schema (Alembic, under a lock);
4. log the durability settings of the database (SQLite WAL and ``synchronous``;
   PostgreSQL ``fsync``, ``synchronous_commit``) and warn if they are unsafe;
5. claim the database for the origin if it is new, and check the committed tree:
   its stored hashes must hash to the head's root;
6. check the database's published checkpoint, if any: it must verify with the log
   key, name the origin, and match the committed tree at its size (a database of
   another log, or a log key that was replaced, fails here);
7. check the database against ``<data-dir>/published-checkpoint``, the newest
   checkpoint this server has published: the database's tree must be at least that
   large and have that root at that size. A smaller tree, or another root, is a
   restored old backup or a fork, and serving it would make the log sign a
   checkpoint inconsistent with one it already published;
8. publish the committed tree (``api.checkpoints.CheckpointPublisher``): a crash
   may have left batches committed and never published;
9. write the log's vkey to ``<data-dir>/log.vkey``.

:class:`api.published.PublishedCheckpoint` keeps that file: the checkpoint publisher
records each new checkpoint in it (atomically replaced and fsynced, under a file
lock, never going back) *after* the commit and *before* the database publishes it,
so the file never lags behind anything served.

:func:`run` prepares once in the main process, prints the vkey, and runs uvicorn
with the application factory ``api.app:create_app``; each worker process builds its
own :class:`Service` (``prepare`` is idempotent and safe to run concurrently) from
the same settings, passed down as ``LEDGER_*`` environment variables.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn

from api.checkpoints import CheckpointPublisher
from api.connections import uvicorn_options
from api.logkey import load_log_key
from api.published import PublishedCheckpoint
from api.sequencing.batch import Appender, InThreadAppender
from api.sequencing.child import ChildAppender
from api.sequencing.queue import BatchReport, Sequencer
from api.settings import Settings
from api.storage.base import LogHead, StorageError, TreeHead
from api.storage.sql import SqlStorage
from keys.errors import KeysError
from keys.signer import NoteSigner, Signer
from ledger.core import merkle
from ledger.core.checkpoint import open_checkpoint
from ledger.core.errors import LedgerError
from ledger.core.note import parse_vkey
from ledger.durable import write_atomic

logger = logging.getLogger("api.server")

#: Exit status of a server that refused to start.
EXIT_REFUSED = 2


class StartupError(Exception):
    """The server must not start; the message says why and what to do."""


# --- the service ------------------------------------------------------------------


@dataclass
class Service:
    """What a serving process holds: settings, storage, log key, published record.

    Build it with :func:`prepare`; start its sequencer with :meth:`start_sequencer`
    (the application factory does both) and :meth:`close` it on shutdown.
    """

    settings: Settings
    storage: SqlStorage
    log_key: Signer
    note_signer: NoteSigner
    vkey: str
    published: PublishedCheckpoint
    publisher: CheckpointPublisher
    head: LogHead
    warnings: list[str] = field(default_factory=list)
    sequencer: Sequencer | None = None
    appender: Appender | None = None

    def start_sequencer(self, on_batch: Callable[[BatchReport], None] | None = None) -> Sequencer:
        """Start this process's sequencer with the configured batching."""
        if self.sequencer is not None:
            return self.sequencer
        s = self.settings
        if self.appender is None and s.sequencer_process:
            # The child process publishes each checkpoint itself (api.sequencing.child).
            self.appender = ChildAppender(s).start()
        elif self.appender is None:
            self.appender = InThreadAppender(self.storage, self.publisher)
        self.sequencer = Sequencer(
            self.appender,
            batch_max_records=s.batch_max_records,
            batch_max_ms=s.batch_max_ms,
            queue_size=s.queue_size,
            max_age_s=s.max_age_s,
            on_batch=on_batch,
        ).start()
        return self.sequencer

    def close(self) -> None:
        """Finish the queued records, then close the database."""
        if self.sequencer is not None:
            self.sequencer.stop()
            self.sequencer = None
        if self.appender is not None:
            self.appender.close()
            self.appender = None
        self.storage.close()


def _check_tree(storage: SqlStorage, tree: TreeHead) -> None:
    """The committed tree's stored hashes hash to its root."""
    root = merkle.tree_hash(tree.size, storage)
    if root != tree.root:
        raise StartupError(
            f"the stored tree of size {tree.size} does not hash to the head's root: "
            "the database is damaged"
        )


def _check_head(storage: SqlStorage, tree: TreeHead, vkey: str, origin: str) -> None:
    """The database's published checkpoint, if any, verifies with the log key and
    matches the committed tree."""
    head = storage.head()
    if not head.checkpoint:
        return
    try:
        cp, _ = open_checkpoint(head.checkpoint, [parse_vkey(vkey)], origin)
    except LedgerError as e:
        raise StartupError(
            f"the database's checkpoint does not verify with the log key ({e}): the log key "
            "was replaced, or the database belongs to another log. Restore the right key "
            "file or database."
        ) from e
    if (cp.size, cp.root) != (head.size, head.root) or cp.size > tree.size:
        raise StartupError(
            f"the database's checkpoint (size {cp.size}) does not match its published head "
            f"(size {head.size}) or is beyond its tree (size {tree.size}): the database is "
            "damaged"
        )
    if merkle.tree_hash(cp.size, storage) != cp.root:
        raise StartupError(
            f"the stored tree at size {cp.size} does not hash to the published root: "
            "the database is damaged"
        )


def _check_published(
    storage: SqlStorage, head: TreeHead, published: PublishedCheckpoint, vkey: str, origin: str
) -> None:
    """Refuse a database behind (or beside) the newest checkpoint we published."""
    data = published.read()
    if data is None:
        return
    try:
        cp, _ = open_checkpoint(data, [parse_vkey(vkey)], origin)
    except LedgerError as e:
        raise StartupError(
            f"{published.path} does not verify with the log key ({e}); it records the "
            "newest checkpoint this server published, so it must not be edited. If the "
            "log key or origin was changed on purpose for a new log, use a new data "
            "directory."
        ) from e
    if head.size < cp.size:
        raise StartupError(
            f"the database holds {head.size} entries, but this server already published "
            f"a checkpoint of {cp.size} entries ({published.path}): the database is an old "
            "backup, or not this log's. Serving it would fork the log. Restore the newest "
            "database; never delete that file to get around this check."
        )
    try:
        root = merkle.tree_hash(cp.size, storage)
    except (ValueError, StorageError) as e:
        raise StartupError(f"cannot read the stored tree at size {cp.size}: {e}") from e
    if root != cp.root:
        raise StartupError(
            f"the database's tree at size {cp.size} has root {root.hex()}, but this server "
            f"published root {cp.root.hex()} for that size ({published.path}): the database "
            "is a fork or another log's. Refusing to serve it."
        )


def _write_vkey(settings: Settings, vkey: str) -> None:
    data = (vkey + "\n").encode()
    try:
        if not settings.vkey_path.exists() or settings.vkey_path.read_bytes() != data:
            write_atomic(settings.vkey_path, data)
    except OSError as e:
        raise StartupError(f"cannot write {settings.vkey_path}: {e}") from e


def prepare(settings: Settings) -> Service:
    """Everything before serving (see the module docstring); raises StartupError."""
    data_dir = settings.data_dir
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StartupError(f"cannot create the data directory {data_dir}: {e}") from e
    try:
        log_key = load_log_key(settings)
    except KeysError as e:
        raise StartupError(str(e)) from e
    note_signer = log_key.note_signer(settings.origin)
    vkey = note_signer.vkey

    url = settings.effective_database_url
    try:
        storage = SqlStorage(
            url, origin=settings.origin, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
    except StorageError as e:
        raise StartupError(f"cannot open the database: {e}") from e
    try:
        durability = storage.durability()
        logger.info(
            "database %r: %s",
            storage,
            ", ".join(f"{k}={v}" for k, v in sorted(durability.settings.items())),
        )
        for w in durability.warnings:
            logger.warning("%s", w)
        tree = storage.init_log()
        _check_tree(storage, tree)
        _check_head(storage, tree, vkey, settings.origin)
        published = PublishedCheckpoint(settings.published_checkpoint_path)
        _check_published(storage, tree, published, vkey, settings.origin)
        # The committed tree is about to be served: publish it.
        publisher = CheckpointPublisher(storage, note_signer, published)
        head = publisher.publish(tree.size, tree.root)
        _write_vkey(settings, vkey)
    except StorageError as e:
        storage.close()
        raise StartupError(f"database error at start: {e}") from e
    except BaseException:
        storage.close()
        raise
    logger.info("log %s: %d entries; vkey %s", settings.origin, head.size, vkey)
    return Service(
        settings=settings,
        storage=storage,
        log_key=log_key,
        note_signer=note_signer,
        vkey=vkey,
        published=published,
        publisher=publisher,
        head=head,
        warnings=list(durability.warnings),
    )


def run(settings: Settings) -> None:
    """Prepare, print the vkey, and serve with uvicorn until interrupted."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    service = prepare(settings)
    service.close()
    print(f"log origin: {settings.origin}", flush=True)
    print(f"log vkey:   {service.vkey}  (also in {settings.vkey_path})", flush=True)
    for w in service.warnings:
        print(f"WARNING: {w}", file=sys.stderr, flush=True)
    # Workers build their own Settings from the environment: hand ours down.
    os.environ.update(settings.to_env())
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        proxy_headers=False,  # X-Forwarded-For counts only from trusted_proxies (api.limits)
        **uvicorn_options(settings),  # read deadlines, connection cap (api.connections)
    )


def serve(settings: Settings) -> int:
    """:func:`run`, turning a refusal to start into a message and exit status 2."""
    try:
        run(settings)
    except StartupError as e:
        print(f"ledger serve: refusing to start: {e}", file=sys.stderr, flush=True)
        return EXIT_REFUSED
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m api.server``: serve with settings from ``LEDGER_*`` variables only."""
    if argv:
        print("usage: python -m api.server (configure with LEDGER_* variables)", file=sys.stderr)
        return EXIT_REFUSED
    try:
        settings = Settings()
    except ValueError as e:
        print(f"ledger serve: invalid settings: {e}", file=sys.stderr, flush=True)
        return EXIT_REFUSED
    return serve(settings)


__all__ = [
    "EXIT_REFUSED",
    "Service",
    "StartupError",
    "main",
    "prepare",
    "run",
    "serve",
]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
