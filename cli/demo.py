"""``ledger demo``: the whole life of a statement, on a fresh local log.

On a fresh data directory it starts a local server (``ledger serve`` in a
subprocess, on a free port), and then, as clearly labelled demo signatories each
holding its own throwaway key (``cli/examples/paris-call/signatories.csv``, package
data read with :mod:`importlib.resources`: 51 fictional states, a few companies and
civil-society organisations):

1. registers them all (batch endpoint, progress bar);
2. publishes the example statement modelled on the 2018 Paris Call
   (``cli/examples/paris-call/statement.txt``), co-signed by its two authors;
3. has every signatory endorse it (batch endpoint, progress bar);
4. withdraws one endorsement, rotates one key and revokes another, and shows
   that the log then refuses records signed by the rotated-away and revoked keys;
5. verifies the whole log with the verifier's own code (``ledger.verify.verifier``),
   trusting only ``<data-dir>/log.vkey``, and checks that the tallies the server
   publishes are the ones the verifier computes;
6. prints the tallies and stops the server.

Every receipt is verified and kept in ``<data-dir>/receipts/``, the keys in
``<data-dir>/demo-keys/`` (unencrypted: they are demo keys), the server's output in
``<data-dir>/server.log``. The log stays in the data directory, so that ``ledger
serve --data-dir DIR`` serves it afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import click
import httpx

from cli.bulk import (
    SignatoryRow,
    count,
    endorsements,
    key_file_names,
    prepare_keys,
    read_signatories_csv,
    registrations,
)
from cli.config import Pins
from cli.errors import InputError, RefusedError, UnreachableError, VerifyError
from cli.flows import read_text_file, write_new_file
from cli.output import counted, err, out, progress, table
from cli.serve_cmd import require_server_extra
from cli.session import ServerOptions, Session, open_session
from cli.submit import (
    BatchOutcome,
    draft_of,
    now,
    sign,
    submit_batches,
    submit_record,
    summarize_refusals,
)
from ledger.core.errors import LedgerError
from ledger.core.records import Kind, Revocation, Rotation, SignedRecord, Statement, Withdrawal
from ledger.core.state import KINDS
from ledger.verify.source import open_source
from ledger.verify.verifier import verify_log

#: The example, shipped in the package (pyproject.toml, [tool.setuptools.package-data]).
EXAMPLE: Traversable = importlib.resources.files("cli") / "examples" / "paris-call"
EXAMPLE_FILES = ("README.md", "title.txt", "statement.txt", "signatories.csv")
#: The demo's log has an origin and a port of its own, so that it never meets the log of a
#: default ``ledger serve`` (origin localhost/ledger, port 8000): not on the port, and not
#: in the client's pinned keys, which are kept per server URL (cli/config.py).
DEMO_ORIGIN = "localhost/ledger-demo"
DEMO_PORT = 8001
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass
class Example:
    title: str
    text: str
    rows: list[SignatoryRow]


def load_example(directory: Traversable, states: int) -> Example:
    """The example's title, text and signatories (the first ``states`` states and all others)."""
    for name in ("title.txt", "statement.txt", "signatories.csv"):
        if not directory.joinpath(name).is_file():
            raise InputError(
                f"the example is not in {directory} (missing {name}); reinstall the "
                "package, or give --example-dir"
            )
    title = directory.joinpath("title.txt").read_text(encoding="utf-8").strip()
    # as_file: a real file even if the package were imported from a zip archive.
    with importlib.resources.as_file(directory.joinpath("statement.txt")) as path:
        text = read_text_file(path)
    with importlib.resources.as_file(directory.joinpath("signatories.csv")) as path:
        rows = read_signatories_csv(path)
    kept: list[SignatoryRow] = []
    n_states = 0
    for row in rows:
        if row.kind is Kind.STATE:
            n_states += 1
            if n_states > states:
                continue
        kept.append(row)
    return Example(title, text, kept)


def export_example(directory: Path) -> None:
    """Copy the example's files into ``directory``; never overwrite one."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name in EXAMPLE_FILES:
            write_new_file(directory / name, (EXAMPLE / name).read_bytes(), what="example")
    except OSError as e:
        raise InputError(f"cannot write the example to {directory}: {e.strerror or e}") from None
    click.echo(f"the example is in {directory}/: " + ", ".join(EXAMPLE_FILES))
    click.echo(f"its README ({directory / 'README.md'}) tells the demo's story by hand")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _check_fresh(data_dir: Path) -> None:
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise InputError(
            f"{data_dir} is not empty: the demo needs a fresh data directory. To serve the "
            f"log of an earlier demo: {serve_again(data_dir)}"
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def local_server(
    data_dir: Path, port: int, *, origin: str | None = None, args: Sequence[str] = ()
) -> Iterator[str]:
    """``ledger serve`` on 127.0.0.1:``port`` in a subprocess; yields its URL, stops it after.

    The child gets no ``LEDGER_*`` variable of ours (a LEDGER_DATABASE_URL must not
    send the demo to another database) and no rate limit (the demo is its only client).
    """
    log_path = data_dir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    command = [
        sys.executable, "-m", "cli", "serve",
        "--data-dir", str(data_dir),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--rate-limit-rps", "0",
        "--log-level", "warning",
    ]  # fmt: skip
    if origin is not None:
        command += ["--origin", origin]
    command += args
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        # Our own interpreter and arguments: nothing here comes from outside.
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)  # noqa: S603
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise UnreachableError(
                    f"the demo server exited with status {proc.returncode}; "
                    f"its output ({log_path}):\n{_tail(log_path)}"
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise UnreachableError(f"the demo server did not start in time; see {log_path}")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _step(n: int, total: int, text: str) -> None:
    err().print(f"[bold]{n}/{total}[/bold] {text}")


def _check_all(outcomes: list[BatchOutcome], what: str) -> None:
    if any(not o.ok for o in outcomes):
        summarize_refusals(outcomes)
        raise VerifyError(f"the log refused some {what}; see above")


def _expect_refusal(session: Session, what: str, record: SignedRecord, code: str) -> str:
    """Submit a record the log must refuse with ``code``; return the line to print."""
    try:
        session.client.submit(record.encode())
    except RefusedError as e:
        if e.code != code:
            raise VerifyError(
                f"{what}: expected the log to refuse it ({code}), got {e.code}"
            ) from None
        return f"refused, as it must be: {what} ({e.code})"
    raise VerifyError(f"{what}: the log accepted it, but must refuse it ({code})")


@click.command("demo")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("ledger-demo"),
    show_default=True,
    help="A fresh directory for the demo log; it stays there afterwards.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Server port (default: free)."
)
@click.option(
    "--export-example",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Copy the example's files (statement, title, signatories, README with the same "
    "story by hand) into DIR and stop; nothing else is done.",
)
@click.option("--states", type=click.IntRange(2, 51), default=51, hidden=True)
@click.option(
    "--example-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    hidden=True,
)
def demo(
    data_dir: Path, port: int, export_dir: Path | None, states: int, example_dir: Path | None
) -> None:
    """Run the Paris Call example on a fresh local log.

    Starts a server, registers 62 demo signatories (51 fictional states, 5 companies
    and 6 NGOs, each with its own throwaway key), publishes the example statement signed by
    two authors, has everyone endorse it, withdraws one endorsement, rotates one key,
    revokes another, verifies the whole log and prints the tallies. The log stays in
    DATA_DIR. Its origin is localhost/ledger-demo, and it is served again on port 8001,
    so that it never meets the log of a default 'ledger serve' (localhost/ledger, 8000).

    \b
    Example:
      ledger demo --data-dir paris-demo
      ledger serve --data-dir paris-demo --origin localhost/ledger-demo --port 8001
      ledger statements --server http://127.0.0.1:8001
      ledger demo --export-example paris-call      # the example's files, to try by hand
    """
    if export_dir is not None:
        export_example(export_dir)
        return
    require_server_extra("ledger demo")  # it runs ledger serve
    example = load_example(example_dir or EXAMPLE, states)
    _check_fresh(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys_dir = data_dir / "demo-keys"
    receipts = data_dir / "receipts"
    keys_dir.mkdir()
    (keys_dir / "README.txt").write_text(
        "THROWAWAY DEMO KEYS, stored UNENCRYPTED. They belong to fictional demo\n"
        "signatories of 'ledger demo'. Never use them for anything real.\n",
        encoding="utf-8",
    )
    total = 7
    _step(1, total, f"starting a local server on {data_dir}")
    with local_server(data_dir, port or free_port(), origin=DEMO_ORIGIN) as url:
        vkey = (data_dir / "log.vkey").read_text(encoding="utf-8").strip()
        session = open_session(
            ServerOptions(url, vkey), for_write=True, pins=Pins(data_dir / "client"), quiet=True
        )
        try:
            _run(
                session=session,
                example=example,
                data_dir=data_dir,
                keys_dir=keys_dir,
                receipts=receipts,
                total=total,
            )
        finally:
            session.client.close()
        click.echo()
        click.echo(f"The demo log ({DEMO_ORIGIN}) stays in {data_dir}. Serve it again with:")
        click.echo(f"  {serve_again(data_dir)}")
        click.echo("and, in another terminal:")
        demo_url = f"http://127.0.0.1:{DEMO_PORT}"
        click.echo(f"  ledger statements --server {demo_url}")
        click.echo(f"  ledger-verify log {demo_url} --log-key {data_dir / 'log.vkey'}")
        click.echo(f"Receipts: {receipts}/ (check one with ledger-verify receipt).")


def serve_again(data_dir: Path) -> str:
    """The command that serves the demo's log afterwards (its own origin and port)."""
    return f"ledger serve --data-dir {data_dir} --origin {DEMO_ORIGIN} --port {DEMO_PORT}"


def _run(
    *,
    session: Session,
    example: Example,
    data_dir: Path,
    keys_dir: Path,
    receipts: Path,
    total: int,
) -> None:
    rows = example.rows
    labels = [r.name for r in rows]
    paths = key_file_names(rows, keys_dir)
    signers = prepare_keys(paths, passphrase=None, new_key_passphrase=None, description="keys")
    by_role = {r.extra.get("demo", ""): i for i, r in enumerate(rows) if r.extra.get("demo")}
    authors = [i for i, r in enumerate(rows) if r.extra.get("demo") == "author"]
    for role in ("withdraw", "rotate", "revoke"):
        if role not in by_role:
            raise InputError(f"the example names no signatory for the demo's {role!r} step")
    if len(authors) != 2:
        raise InputError("the example must name exactly two authors (demo column)")

    _step(2, total, f"registering {counted(len(rows), 'demo signatory', 'demo signatories')}")
    t0 = now()
    registered = submit_batches(
        session,
        registrations(rows, signers, session.origin, t0),
        receipts_dir=receipts,
        description="registering",
        batch_size=25,
    )
    _check_all(registered, "registrations")

    _step(3, total, "publishing the example statement, co-signed by two authors")
    body = Statement(
        session.origin,
        t0,
        example.title,
        tuple(signers[i].key_hash for i in authors),
        example.text,
    )
    record = draft_of(body)
    for i in authors:
        record = sign(record, signers[i])
    saved = submit_record(session, record, receipts_dir=receipts)
    statement = record.record_id
    err().print(
        f"  statement {statement.hex()} at index {saved.index}, by "
        + " and ".join(rows[i].name for i in authors),
        markup=False,
    )

    _step(4, total, counted(len(rows), "endorsement"))
    t1 = now()
    comments = [r.extra.get("comment") or None for r in rows]
    endorsed = submit_batches(
        session,
        endorsements(
            labels=labels,
            signers=signers,
            origin=session.origin,
            statement=statement,
            signed_at=t1,
            comments=comments,
        ),
        receipts_dir=receipts,
        description="endorsing",
        batch_size=25,
    )
    _check_all(endorsed, "endorsements")

    _step(5, total, "a withdrawal, a key rotation and a revocation")
    w, r, v = by_role["withdraw"], by_role["rotate"], by_role["revoke"]
    # signed_at of a pair's withdrawal must exceed its endorsement's (spec rule 9).
    wd = sign(Withdrawal(session.origin, t1 + 1, signers[w].key_hash, statement), signers[w])
    lines = [
        f"{rows[w].name} withdrew its endorsement (index "
        f"{submit_record(session, wd, receipts_dir=receipts).index})"
    ]
    new_path = keys_dir / (paths[r].stem + "-rotated.key")
    new_key = prepare_keys(
        [new_path], passphrase=None, new_key_passphrase=None, description="new key"
    )[0]
    rot = sign(
        sign(Rotation(session.origin, now(), signers[r].key_hash, new_key.public_key), signers[r]),
        new_key,
    )
    lines.append(
        f"{rows[r].name} rotated its key to {new_path.name} (index "
        f"{submit_record(session, rot, receipts_dir=receipts).index})"
    )
    rev = sign(
        Revocation(
            session.origin,
            now(),
            signers[v].key_hash,
            signers[v].public_key,
            "Demo: this key was declared compromised",
        ),
        signers[v],
    )
    lines.append(
        f"{rows[v].name} revoked its key (index "
        f"{submit_record(session, rev, receipts_dir=receipts).index}); its endorsement "
        "stays counted, it can sign nothing more"
    )
    # The log must now refuse the old and the revoked key.
    t2 = now() + 1
    lines.append(
        _expect_refusal(
            session,
            f"a withdrawal signed with {rows[r].name}'s old key",
            sign(Withdrawal(session.origin, t2, signers[r].key_hash, statement), signers[r]),
            "key_rotated",
        )
    )
    lines.append(
        _expect_refusal(
            session,
            f"a withdrawal signed with {rows[v].name}'s revoked key",
            sign(Withdrawal(session.origin, t2, signers[v].key_hash, statement), signers[v]),
            "key_revoked",
        )
    )
    for line in lines:
        err().print("  " + line, markup=False)

    _step(6, total, "verifying the whole log, trusting only " + str(data_dir / "log.vkey"))
    summary = _verify(session)
    server_tally = session.client.statement(statement.hex())["tally"]
    mine = next(s for s in summary["statements"] if s["id"] == statement.hex())
    if mine["endorsements_by_kind"] != {k: server_tally["by_kind"].get(k, 0) for k in KINDS}:
        raise VerifyError(
            f"the server's tallies {server_tally} differ from the verified log's {mine}"
        )
    err().print(
        f"  valid: {counted(summary['size'], 'entry', 'entries')}; the server's tallies "
        "match the verified log's",
        markup=False,
    )

    _step(7, total, "tallies")
    _print_tallies(example.title, statement.hex(), mine, summary, registered)


def _verify(session: Session) -> dict[str, Any]:
    """Verify the log with ledger.verify.verifier (the verifier's code), with a progress bar."""
    with progress() as bar:
        task = bar.add_task("verifying", total=None)

        def advance(done: int, size: int) -> None:
            bar.update(task, completed=done, total=size)

        try:
            result = verify_log(
                open_source(session.server), session.trust, jobs=1, progress=advance
            )
        except LedgerError as e:
            raise VerifyError(f"the demo log does not verify: {e} [{e.code}]") from None
    summary: dict[str, Any] = result.replay.summary()
    return summary


def _print_tallies(
    title: str,
    statement: str,
    mine: dict[str, object],
    summary: dict[str, object],
    registered: list[BatchOutcome],
) -> None:
    by_kind = mine["endorsements_by_kind"]
    signatories = summary["signatories_by_kind"]
    assert isinstance(by_kind, dict) and isinstance(signatories, dict)
    grid = table("kind", "signatories", "active endorsements", title=title)
    for k in KINDS:
        grid.add_row(k, str(signatories.get(k, 0)), str(by_kind.get(k, 0)))
    grid.add_row("total", str(summary["signatories"]), str(mine["endorsements"]))
    console = out()
    console.print(grid)
    size = summary["size"]
    assert isinstance(size, int)
    console.print(
        f"statement {statement}; log of {counted(size, 'entry', 'entries')}; "
        f"{counted(count(registered)['logged'], 'registration')}"
    )


__all__ = [
    "DEMO_ORIGIN",
    "DEMO_PORT",
    "EXAMPLE",
    "EXAMPLE_FILES",
    "demo",
    "export_example",
    "free_port",
    "load_example",
    "local_server",
]
