"""``ledger serve``: the log service (``api.server``), configured from options and
``LEDGER_*`` variables.

Each option maps onto one field of :class:`api.settings.Settings`; an option not
given leaves the field to its ``LEDGER_<NAME>`` environment variable, then to its
default (pydantic-settings reads the environment, so both spellings are checked by
the same validators). ``api`` is imported only when the command runs, so that the
signatory's commands work with the ``cli`` extra alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.errors import InputError

#: Settings fields that are not options of ``ledger serve`` (and why).
NOT_OPTIONS = {
    # A secret: read from --log-key-passphrase-file or LEDGER_LOG_KEY_PASSPHRASE, never argv.
    "log_key_passphrase": "--log-key-passphrase-file",
}

#: (option, Settings field, metavar, help): the help ends with the variable's name.
OPTIONS: list[tuple[str, str, str, str]] = [
    ("--data-dir", "data_dir", "DIR", "SQLite database, log key and log.vkey. [./ledger-data]"),
    (
        "--database-url",
        "database_url",
        "URL",
        "postgresql+psycopg://user@host:5432/db for PostgreSQL. [sqlite in --data-dir]",
    ),
    (
        "--origin",
        "origin",
        "ORIGIN",
        "The log's name, a URL without scheme: ledger.example.org/paris-call. [localhost/ledger]",
    ),
    ("--host", "host", "HOST", "Address to listen on. [127.0.0.1]"),
    ("--port", "port", "PORT", "Port to listen on. [8000]"),
    ("--workers", "workers", "N", "Worker processes. [1]"),
    (
        "--batch-max-records",
        "batch_max_records",
        "N",
        "Most records sequenced per batch (one commit). [1000]",
    ),
    ("--batch-max-ms", "batch_max_ms", "MS", "How long a batch waits to fill. [5]"),
    ("--queue-size", "queue_size", "N", "Records waiting before 503 overloaded. [10000]"),
    (
        "--sequencer-process",
        "sequencer_process",
        "true|false",
        "Sequence in a child process of each server process, away from the requests' "
        "GIL (false: in a thread). [true]",
    ),
    (
        "--max-age-s",
        "max_age_s",
        "SECONDS|none",
        "Oldest signed_at accepted, in seconds before integration. [2592000, 30 days]",
    ),
    ("--max-body-bytes", "max_body_bytes", "BYTES", "Largest single-record request."),
    ("--max-batch-body-bytes", "max_batch_body_bytes", "BYTES", "Largest batch request."),
    ("--max-batch-records", "max_batch_records", "N", "Records per batch request. [1000]"),
    (
        "--max-buffered-body-bytes",
        "max_buffered_body_bytes",
        "BYTES",
        "Request bodies held at once per process, all requests together; beyond, 503. [67108864]",
    ),
    (
        "--rate-limit-rps",
        "rate_limit_rps",
        "RPS",
        "Requests per second per client on /api/; 0 turns the limit off. [50]",
    ),
    ("--rate-limit-burst", "rate_limit_burst", "N", "Requests a client may burst. [200]"),
    (
        "--trusted-proxies",
        "trusted_proxies",
        "NETS",
        "Comma-separated proxies whose X-Forwarded-For is believed.",
    ),
    (
        "--header-timeout-s",
        "header_timeout_s",
        "SECONDS",
        "Time a client has to send a request's headers, then 408 and closed. [10]",
    ),
    (
        "--body-timeout-s",
        "body_timeout_s",
        "SECONDS",
        "Time a client has to send a whole request body, then 408 and closed. [60]",
    ),
    (
        "--keep-alive-timeout-s",
        "keep_alive_timeout_s",
        "SECONDS",
        "Time an idle connection is kept between requests. [5]",
    ),
    (
        "--max-connections",
        "max_connections",
        "N",
        "Open connections per server process; more are answered 503. [1000]",
    ),
    ("--max-header-bytes", "max_header_bytes", "BYTES", "Largest request head. [16384]"),
    ("--log-key-path", "log_key_path", "FILE", "The log's private key. [DIR/log.key]"),
    (
        "--publish-dir",
        "publish_dir",
        "DIR",
        "Also write the log's static tlog-tiles layout (checkpoint, tiles, bundles) here "
        "as it grows, for any web server or CDN. [off]",
    ),
    (
        "--sqlite-busy-timeout-ms",
        "sqlite_busy_timeout_ms",
        "MS",
        "How long SQLite waits for a lock. [30000]",
    ),
    ("--log-level", "log_level", "LEVEL", "critical, error, warning, info or debug. [info]"),
    (
        "--opentelemetry",
        "opentelemetry",
        "true|false",
        "FastAPI's native OpenTelemetry, to the global providers. [false]",
    ),
]

SERVE_HELP = """Run the log service (HTTP API and tlog-tiles).

It serves until interrupted. On first start it creates the data directory, the
SQLite database and the log's key, and prints the log's verifier key (also written
to DATA_DIR/log.vkey): give it to your signatories and verifiers out of band. Every
option also reads the environment variable shown; options win.

\b
Example:
  ledger serve
  ledger serve --origin ledger.example.org/paris-call --host 0.0.0.0 --workers 4 \\
      --database-url postgresql+psycopg://ledger@db:5432/ledger
"""


def _env(field: str) -> str:
    return f"LEDGER_{field.upper()}"


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    decorators = []
    for opt, field, metavar, help_text in OPTIONS:
        decorators.append(
            click.option(
                opt, field, default=None, metavar=metavar, help=f"{help_text} ({_env(field)})"
            )
        )
        if field == "log_key_path":
            decorators.append(
                click.option(
                    "--log-key-passphrase-file",
                    "log_key_passphrase_file",
                    type=click.Path(dir_okay=False, path_type=Path),
                    default=None,
                    help="Encrypt the log key with the passphrase in this file "
                    "(LEDGER_LOG_KEY_PASSPHRASE).",
                )
            )
    for decorate in reversed(decorators):
        f = decorate(f)
    return f


def _read_secret(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    return text.removesuffix("\n").removesuffix("\r")


def require_server_extra(command: str) -> None:
    """InputError (exit 2) naming the extra to install if the server's packages are missing."""
    try:
        # Imported here: the signatory's commands must not need the server's packages.
        import api.settings  # noqa: F401, PLC0415
    except ImportError as e:
        raise InputError(
            f"'{command}' needs the server extra ({e.name} is missing): "
            "pip install 'endorsement-ledger[server]'"
        ) from None


def build_settings(options: dict[str, Any]) -> Any:
    """The api.settings.Settings of the options given (the rest from the environment)."""
    require_server_extra("ledger serve")
    from pydantic import ValidationError  # noqa: PLC0415

    from api.settings import Settings  # noqa: PLC0415

    values: dict[str, Any] = {}
    for field, value in options.items():
        if value is None:
            continue
        if field == "log_key_passphrase_file":
            values["log_key_passphrase"] = _read_secret(value)
        elif field == "max_age_s" and str(value).lower() == "none":
            values[field] = None
        else:
            values[field] = value
    try:
        return Settings(**values)
    except ValidationError as e:
        first = e.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else ""
        where = f"--{field.replace('_', '-')} ({_env(field)})" if field else "settings"
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise InputError(f"invalid setting {where}: {message}{more}") from None


def serve_command() -> click.Command:
    @click.command("serve", help=SERVE_HELP)
    @_options
    def serve(**options: Any) -> None:
        settings = build_settings(options)
        from api.server import serve as run_server  # noqa: PLC0415

        code = run_server(settings)
        sys.exit(code)

    return serve


serve = serve_command()

__all__ = ["NOT_OPTIONS", "OPTIONS", "build_settings", "require_server_extra", "serve"]
