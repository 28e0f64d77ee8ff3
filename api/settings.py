"""The service's settings: command-line options and ``LEDGER_*`` environment variables.

Every setting has an environment variable named ``LEDGER_`` plus its name in
capitals (``LEDGER_DATABASE_URL``, ``LEDGER_ORIGIN``...; ``none`` means unset, as in
``LEDGER_MAX_AGE_S=none``, and ``LEDGER_TRUSTED_PROXIES`` is comma-separated);
``ledger serve`` options override them. Values are checked when :class:`Settings`
is built, so a server with an unsafe or placeholder value refuses to start with a
message that names the setting.

Defaults give an embedded server that needs nothing else: a data directory
``./ledger-data`` holding the SQLite database ``ledger.db`` and the log key
``log.key`` (created on first start), listening on 127.0.0.1:8000 with origin
``localhost/ledger``. The origin names the log in every checkpoint and every record
(docs/spec.md, "Checkpoints"), so a public log MUST set its own, normally its URL
without scheme: ``ledger.example.org/paris-call``. It cannot be changed once the
database holds the log (the server then refuses to start).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ledger.core.records import MAX_RECORD_SIZE
from ledger.core.rules import DEFAULT_MAX_AGE_S

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The development origin: fine on one machine, wrong for a public log.
DEFAULT_ORIGIN = "localhost/ledger"
DATABASE_FILE = "ledger.db"
LOG_KEY_FILE = "log.key"

# docs/spec.md "Checkpoints": a valid ``log`` value, 1 to 255 printable ASCII
# characters without space or '+'.
_ORIGIN = re.compile(r"[\x21-\x2a\x2c-\x7e]{1,255}")
#: Host labels that say "fill me in".
_PLACEHOLDERS = frozenset(
    {"changeme", "change-me", "change_me", "your-domain", "yourdomain", "todo", "placeholder"}
)


class Settings(BaseSettings):
    """What ``ledger serve`` needs to know; see the module docstring for the defaults."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGER_",
        env_parse_none_str="none",  # LEDGER_MAX_AGE_S=none: no age limit
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    data_dir: Path = Field(
        default=Path("./ledger-data"),
        description="Directory of the SQLite database, the log key and the published "
        "checkpoint record.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/ledger.db. PostgreSQL: "
        "postgresql+psycopg://user@host:5432/dbname.",
    )
    origin: str = Field(
        default=DEFAULT_ORIGIN,
        description="The log's origin, a schema-less URL such as "
        "ledger.example.org/paris-call (no spaces, no '+').",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")

    # Sequencing (api.sequencing).
    batch_max_records: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Most records per batch (one transaction): a bulk request of up to "
        "max_batch_records is one commit.",
    )
    batch_max_ms: int = Field(
        default=5, ge=0, le=10_000, description="How long a batch waits to fill, at most."
    )
    sequencer_process: bool = Field(
        default=True,
        description=(
            "Sequence in a child process of each server process (api.sequencing.child), so that "
            "the database work does not contend with the request handling for one GIL."
        ),
    )
    queue_size: int = Field(
        default=10_000, ge=1, description="Records waiting to be sequenced before 503."
    )
    max_age_s: int | None = Field(
        default=DEFAULT_MAX_AGE_S,
        ge=0,
        description="Oldest accepted signed_at, in seconds before integration (spec rule 3).",
    )

    # Requests (api.limits).
    max_body_bytes: int = Field(
        default=MAX_RECORD_SIZE + 1024,
        ge=1024,
        description="Largest body of a single-record request.",
    )
    max_batch_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_batch_records: int = Field(default=1000, ge=1)
    max_buffered_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Request bodies one server process holds at once, all requests "
        "together; a request that would exceed it is answered 503 overloaded.",
    )
    rate_limit_rps: float = Field(
        default=50.0, ge=0, description="Requests per second per client; 0 turns it off."
    )
    rate_limit_burst: int = Field(default=200, ge=1)
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated addresses or networks whose X-Forwarded-For is believed.",
    )

    # Connections (api.connections).
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request's line and headers, from the "
        "connection's opening or the first byte of its next request (then 408, closed).",
    )
    body_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a whole request body once its headers "
        "are in (then 408, closed).",
    )
    keep_alive_timeout_s: int = Field(
        default=5, ge=1, le=3600, description="Seconds an idle connection is kept between requests."
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Open connections per server process; one more is answered 503 and closed.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest request line and headers (then 400).",
    )

    # Keys and files.
    log_key_path: Path | None = Field(
        default=None, description="The log's private key; default <data_dir>/log.key."
    )
    log_key_passphrase: SecretStr | None = Field(
        default=None, description="If set, the log key file is encrypted with it."
    )
    publish_dir: Path | None = Field(
        default=None,
        description="If set, the service also writes the log's static tlog-tiles layout "
        "(checkpoint, tiles, entry bundles) to this directory as the log grows, "
        "byte-identical with /checkpoint and /tile/..., for any web server, CDN or "
        "object store (api.publish).",
    )
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    log_level: str = "info"
    opentelemetry: bool = Field(
        default=False,
        description=(
            "FastAPI's native OpenTelemetry (traces, metrics and logs to the global "
            "providers). Off by default: /metrics is the service's own, and the check "
            "costs every request a few lookups of the environment."
        ),
    )

    # --- checks ------------------------------------------------------------------

    @field_validator("origin")
    @classmethod
    def _check_origin(cls, v: str) -> str:
        if "://" in v:
            raise ValueError(
                f"origin {v!r} must not have a scheme: write ledger.example.org/name, "
                "not https://ledger.example.org/name"
            )
        if _ORIGIN.fullmatch(v) is None:
            raise ValueError(
                f"origin {v[:300]!r} must be 1 to 255 printable ASCII characters "
                "without spaces or '+' (docs/spec.md, Checkpoints)"
            )
        if v.endswith("/"):
            raise ValueError(f"origin {v!r} must not end with '/'")
        if _PLACEHOLDERS.intersection(v.lower().split("/")[0].split(".")):
            raise ValueError(f"origin {v!r} looks like a placeholder: set the log's own")
        return v

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        scheme = v.split(":", 1)[0]
        if scheme not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
            raise ValueError(
                f"database_url scheme {scheme!r} is not supported: use sqlite:///path or "
                "postgresql+psycopg://user@host:port/dbname"
            )
        if scheme.startswith("sqlite") and (":memory:" in v or v.rstrip("/") in ("sqlite:", "")):
            raise ValueError("database_url must name a SQLite file, not an in-memory database")
        if "changeme" in v.lower():
            raise ValueError("database_url holds a placeholder password ('changeme')")
        return v

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(p.strip() for p in v.split(",") if p.strip())
        return v

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _check_proxies(cls, v: tuple[IPNetwork, ...]) -> tuple[IPNetwork, ...]:
        for net in v:
            if net.prefixlen == 0:
                raise ValueError(
                    f"trusted_proxies {net} trusts every address: anyone could choose "
                    "the client address the rate limit sees"
                )
        return v

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, v: str) -> str:
        v = v.lower()
        if v not in ("critical", "error", "warning", "info", "debug"):
            raise ValueError(f"log_level {v!r} is not one of critical, error, warning, info, debug")
        return v

    @model_validator(mode="after")
    def _check_together(self) -> Settings:
        if self.queue_size < self.batch_max_records:
            raise ValueError(
                f"queue_size ({self.queue_size}) must be at least batch_max_records "
                f"({self.batch_max_records})"
            )
        if self.max_batch_records > self.queue_size:
            raise ValueError(
                f"max_batch_records ({self.max_batch_records}) must not exceed queue_size "
                f"({self.queue_size}): an import must fit in the queue"
            )
        if self.max_buffered_body_bytes < max(self.max_batch_body_bytes, self.max_body_bytes):
            raise ValueError(
                f"max_buffered_body_bytes ({self.max_buffered_body_bytes}) must be at least "
                f"max_batch_body_bytes ({self.max_batch_body_bytes}) and max_body_bytes "
                f"({self.max_body_bytes}): the largest request must fit"
            )
        if self.log_key_passphrase is not None and not self.log_key_passphrase.get_secret_value():
            raise ValueError("log_key_passphrase is empty: unset it or give a passphrase")
        return self

    # --- derived values ----------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        """``database_url``, or the SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / DATABASE_FILE).absolute()}"

    @property
    def effective_log_key_path(self) -> Path:
        return self.log_key_path if self.log_key_path is not None else self.data_dir / LOG_KEY_FILE

    @property
    def vkey_path(self) -> Path:
        """Where the log's verifier key is written at start."""
        return self.data_dir / "log.vkey"

    @property
    def published_checkpoint_path(self) -> Path:
        """The newest checkpoint this server published (see api.server)."""
        return self.data_dir / "published-checkpoint"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def to_env(self) -> dict[str, str]:
        """These settings as ``LEDGER_*`` variables, for uvicorn's worker processes.

        Paths are made absolute so that a worker finds the same files whatever its
        working directory; None is written ``none``.
        """
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                text = "none"
            elif isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, Path):
                text = str(value.absolute())
            elif isinstance(value, tuple):
                text = ",".join(str(v) for v in value)
            else:
                text = str(value)
            env[f"LEDGER_{name.upper()}"] = text
        return env


__all__ = ["DEFAULT_ORIGIN", "Settings"]
