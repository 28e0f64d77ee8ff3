"""``ledger mirror``: keep a verified static copy of a log (:mod:`ledger.mirror.sync`),
and its readable site (:mod:`ledger.mirror.site.build`), built from the state each sync
verified.

Exit codes are the verifier's (``ledger-verify``), not those of the other
``ledger`` commands, since a mirror is a verifier that also publishes: 0 the
mirror is up to date and valid; 1 the source serves an invalid log (nothing was
published); 2 usage, or the source, key, policy or directory cannot be used;
3 the source forked from the mirror (evidence saved, nothing published);
130 interrupted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from cli.config import read_vkey_option
from cli.errors import CliError
from ledger.core.errors import LedgerError
from ledger.core.note import Ed25519Verifier
from ledger.core.state import MemoryState
from ledger.mirror.directory import MirrorError
from ledger.mirror.site.build import Site
from ledger.mirror.sync import Mirror, MirrorForkError, SyncResult
from ledger.verify.cli import EXIT_FORK, EXIT_INVALID, EXIT_USAGE, EXIT_VALID
from ledger.verify.confirm import DomainChecker
from ledger.verify.domains import DomainCheck, Status
from ledger.verify.pipeline import default_jobs
from ledger.verify.source import DEFAULT_TIMEOUT_S, Source, SourceError, open_source
from ledger.verify.trust import Trust

EXIT_INTERRUPTED = 130

MIRROR_HELP = """Copy a log into DIR, verified, as a static tlog-tiles mirror.

SOURCE is the log's server (https://ledger.example.org/paris-call), another
mirror's URL, or a mirror directory. Only what is new since the last run is
fetched; all of it is checked with the verifier's code against the log key
(--log-key) or policy (--policy) before anything is published, and the checkpoint
is written last, so that DIR is always a consistent log that any static web server
can serve. On a fork the mirror keeps its old state, saves the evidence (both
signed checkpoints) in DIR/.ledger-mirror/ and exits with code 3. Unless
--no-site, DIR also gets a readable static site (index.html).

\b
Exit codes (as ledger-verify):
  0  the mirror is up to date and valid
  1  the source serves an invalid log: nothing was published
  2  usage error, or the source, keys or directory cannot be used
  3  fork: the source is not consistent with the mirror (evidence saved)
  130 interrupted

\b
Example:
  ledger mirror https://ledger.example.org/paris-call ./mirror --log-key VKEY
  ledger mirror http://api:8000 /mirror --log-key VKEY --watch 30
  python -m http.server --directory ./mirror 8080
  ledger-verify log http://127.0.0.1:8080 --log-key VKEY
"""


def _say(text: str, *, err: bool = False) -> None:
    click.echo(text, err=err)


def _trust(log_keys: tuple[str, ...], policy: Path | None, origin: str | None) -> Trust:
    if bool(log_keys) == (policy is not None):
        raise click.UsageError("give the log's key with --log-key VKEY, or a --policy FILE")
    try:
        if policy is not None:
            return Trust.from_policy(policy.read_bytes(), origin)
        return Trust.from_vkeys([read_vkey_option(k) for k in log_keys], origin)
    except OSError as e:
        raise click.UsageError(f"cannot read the policy {policy}: {e.strerror or e}") from None
    except CliError as e:
        raise click.UsageError(e.message) from None
    except LedgerError as e:
        raise click.UsageError(f"bad {'policy' if policy else 'log key'}: {e}") from None


def _report(r: SyncResult, origin: str) -> str:
    if r.behind:
        return (
            f"{origin}: the source is behind the mirror (consistent); "
            f"the mirror stays at size {r.size}"
        )
    if r.size > r.previous_size:
        rate = r.entries_checked / r.elapsed_s if r.elapsed_s > 0 else 0.0
        return (
            f"{origin}: size {r.size} (+{r.size - r.previous_size} entries verified, "
            f"{len(r.fetched)} files fetched, {len(r.written)} published) in "
            f"{r.elapsed_s:.2f} s ({rate:,.0f} entries/s)"
        )
    if r.changed:
        return f"{origin}: size {r.size}, new signed checkpoint published"
    return f"{origin}: up to date at size {r.size}"


def _sync(
    mirror: Mirror,
    source: Source,
    trust: Trust,
    *,
    site: Site | None,
    first: bool,
    checker: DomainChecker | None = None,
) -> int:
    """One sync; returns its exit code (reports on standard output or error)."""
    try:
        result = mirror.sync(source)
    except MirrorForkError as e:
        _say(f"ledger mirror: FORK: {e}", err=True)
        if e.evidence_path is not None:
            _say(f"  evidence (both signed checkpoints) saved to {e.evidence_path}", err=True)
            _say(f"  check it with: ledger-verify evidence {e.evidence_path} --log-key VKEY",
                 err=True)  # fmt: skip
        _say(f"  the mirror was not changed: it stays at size {mirror.size}", err=True)
        return EXIT_FORK
    except (SourceError, MirrorError, OSError) as e:
        _say(f"ledger mirror: I/O ERROR: {e}", err=True)
        return EXIT_USAGE
    except LedgerError as e:
        _say(f"ledger mirror: INVALID: the source serves an invalid log: {e}", err=True)
        _say(f"  error code: {e.code}; nothing was published (size {mirror.size})", err=True)
        return EXIT_INVALID
    _say(_report(result, trust.origin))
    state = mirror.state
    domains = None
    if checker is not None and state is not None:
        domains = checker.update(state.replay)
        _report_domains(domains, state.replay)
    if (
        site is not None
        and state is not None
        and state.size > 0
        and (
            first
            or result.changed
            or (checker is not None and checker.changed)
            or not (mirror.root / "index.html").exists()
        )
    ):
        try:
            # from the state the sync verified: nothing is replayed
            site.update(state, domains)
        except (LedgerError, OSError) as e:
            _say(f"ledger mirror: the static site was not built: {e}", err=True)
            return EXIT_INVALID
    return EXIT_VALID


def _report_domains(domains: dict[bytes, DomainCheck], replay: MemoryState) -> None:
    counts: dict[str, int] = {}
    for c in domains.values():
        counts[c.status.value] = counts.get(c.status.value, 0) + 1
        if c.status is Status.MISMATCH:
            name = replay.signatories[c.signatory_id].name
            _say(
                f"ledger mirror: IMPERSONATION ALERT: {name!r} ({c.signatory_id.hex()}) "
                f"claims {c.domain}, which names other signatories: {c.reason}",
                err=True,
            )
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    _say(f"domains: {summary or 'none claimed'}")


@click.command("mirror", help=MIRROR_HELP)
@click.argument("source", metavar="SOURCE")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--log-key",
    "log_keys",
    multiple=True,
    metavar="VKEY|FILE",
    help="The log's verifier key (or a file holding it); repeatable.",
)
@click.option(
    "--policy",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A C2SP tlog-policy file (log and witness keys, quorum) instead of --log-key.",
)
@click.option("--origin", help="The log's origin, when the keys name several (default: theirs).")
@click.option(
    "--watch",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Keep following the log: sync again every SECONDS (Ctrl-C to stop).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes checking signatures. [number of cores]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    metavar="SECONDS",
    help="Network timeout.",
)
@click.option("--no-site", is_flag=True, help="Do not build the static HTML site in DIR.")
@click.option(
    "--check-domains",
    is_flag=True,
    help="Check every claimed domain's proof (DNS TXT and HTTPS): the site then says "
    "which signatories are confirmed, and impostors are reported. Each claim is "
    "checked when first seen and again daily.",
)
@click.pass_context
def mirror_cmd(
    ctx: click.Context,
    *,
    source: str,
    directory: Path,
    log_keys: tuple[str, ...],
    policy: Path | None,
    origin: str | None,
    watch: float | None,
    jobs: int | None,
    timeout: float,
    no_site: bool,
    check_domains: bool,
) -> None:
    trust = _trust(log_keys, policy, origin)
    vkeys = [v.vkey for v in trust.verifiers if isinstance(v, Ed25519Verifier)]
    try:
        src = open_source(source, timeout=timeout)
    except SourceError as e:
        raise click.UsageError(str(e)) from None
    if not source.startswith(("http://", "https://")) and (
        Path(src.location).resolve() == directory.resolve()
    ):
        raise click.UsageError("SOURCE and DIR are the same directory")
    code = EXIT_VALID
    try:
        with Mirror(directory, trust, jobs=jobs or default_jobs()) as mirror:
            site = None if no_site else Site(mirror.root, vkeys)
            checker = DomainChecker(timeout=min(timeout, 10.0)) if check_domains else None
            first = True
            while True:
                code = _sync(mirror, src, trust, site=site, first=first, checker=checker)
                first = False
                # Following a log, a bad answer may be transient: try again next time.
                # A fork is not: stop there.
                if watch is None or code == EXIT_FORK:
                    break
                sys.stdout.flush()
                time.sleep(watch)
    except MirrorForkError as e:  # found while checking a directory we did not write
        _say(f"ledger mirror: FORK: {e} (evidence: {e.evidence_path})", err=True)
        code = EXIT_FORK
    except (MirrorError, SourceError, OSError) as e:
        _say(f"ledger mirror: error: {e}", err=True)
        code = EXIT_USAGE
    except LedgerError as e:  # DIR holds files that are not a valid copy of this log
        _say(f"ledger mirror: INVALID: {directory} does not hold a valid copy: {e}", err=True)
        code = EXIT_INVALID
    except (KeyboardInterrupt, click.Abort):
        _say("ledger mirror: interrupted", err=True)
        code = EXIT_INTERRUPTED
    ctx.exit(code)


__all__ = ["mirror_cmd"]
