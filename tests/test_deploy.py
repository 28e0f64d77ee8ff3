"""The deployment files: docker-compose.yml, the Dockerfile, deploy/ and SECURITY.md.

There is no Docker engine here, so the compose files are parsed and checked for
what a deployment relies on (images, healthchecks, volumes and secrets, the api's
database, read-only containers, no password in the file), and the Dockerfile's
steps are run for real where they can be: its pip steps in fresh virtual
environments (slow), its HEALTHCHECK against a server started through its
ENTRYPOINT and CMD, its entrypoint script and deploy/init-secrets.sh with stand-ins
for ``ledger`` and ``docker``. deploy/nginx.conf is checked by matching real tile
paths against its locations, and, where nginx is installed, by ``nginx -t`` and by
serving a log that ``ledger-verify`` then verifies over HTTP.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from logfactory import LogFactory

from api.settings import Settings
from ledger.core import tiles
from ledger.core.errors import FormatError
from ledger.core.note import parse_vkey
from ledger.core.records import MAX_RECORD_SIZE
from ledger.core.rules import DEFAULT_MAX_AGE_S, MAX_FUTURE_SKEW_S
from ledger.mirror.site.build import build_site
from ledger.mirror.sync import Mirror
from ledger.verify.verifier import Trust

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_DEV = ROOT / "docker-compose.dev.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
NGINX_CONF = DEPLOY / "nginx.conf"
ENTRYPOINT = DEPLOY / "docker-entrypoint.sh"
SECURITY = ROOT / "SECURITY.md"
ORIGIN = "ledger.example.org/deploy-test"
#: The image's user (Dockerfile USER).
LEDGER_UID = 10001


# --- compose ---------------------------------------------------------------------------


class _ComposeLoader(yaml.SafeLoader):
    """YAML as compose reads it: merge keys, and its own tags (!reset, !override)."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_ComposeLoader.add_multi_constructor("!", _tagged)


def load_compose(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_ComposeLoader)
    assert isinstance(data, dict)
    return data


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ``${V}``, ``${V:-default}``, ``${V:?error}``, ``$$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        value = env.get(name)
        if (op in (":-", ":?") and not value) or (op in ("-", "?") and value is None):
            if op and op.endswith("?"):
                raise KeyError(f"{name} is required: {arg}")
            return arg or ""
        return value or ""

    return _VAR.sub(sub, value)


def variables(text: str) -> dict[str, tuple[str | None, str | None]]:
    """Every variable a compose file uses: name -> (operator, argument)."""
    return {m.group(1) or m.group(4): (m.group(2), m.group(3)) for m in _VAR.finditer(text)}


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    kind: str  # volume, bind or tmpfs


def mounts_of(service: dict[str, Any]) -> list[Mount]:
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            source, target = parts[0], parts[1]
            ro = len(parts) > 2 and "ro" in parts[2].split(",")
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        else:
            source, target = v.get("source", ""), v["target"]
            ro = bool(v.get("read_only", False))
            kind = v.get("type", "volume")
        out.append(Mount(source, target, ro, kind))
    for t in service.get("tmpfs", []) if isinstance(service.get("tmpfs"), list) else []:
        out.append(Mount("", t.split(":")[0], False, "tmpfs"))
    if isinstance(service.get("tmpfs"), str):
        out.append(Mount("", service["tmpfs"].split(":")[0], False, "tmpfs"))
    return out


def secrets_of(service: dict[str, Any]) -> list[str]:
    return [s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])]


def depends_of(service: dict[str, Any]) -> dict[str, str | None]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps)
    return {name: (d or {}).get("condition") for name, d in deps.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def test_the_four_services_and_each_has_an_image_or_a_build(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == {"api", "postgres", "mirror", "web", "proxy"}
    for name, s in services.items():
        assert "image" in s or "build" in s, name
    # api and mirror run this project's image, built from the Dockerfile.
    for name in ("api", "mirror"):
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
        assert (ROOT / context / (dockerfile or "Dockerfile")).resolve() == DOCKERFILE
    assert services["api"]["image"] == services["mirror"]["image"]
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    assert services["web"]["image"].split(":")[0] == "nginx"
    assert services["proxy"]["image"].split(":")[0] == "nginx"


def test_every_service_has_a_healthcheck_or_the_images(
    services: dict[str, dict[str, Any]],
) -> None:
    image_check = dockerfile_final_stage().one("HEALTHCHECK")
    for name, s in services.items():
        hc = s.get("healthcheck")
        if hc is None:
            # Inherited from the Dockerfile's HEALTHCHECK, which asks /healthz: only
            # `ledger serve` answers it.
            assert "build" in s and image_check is not None, name
            assert command_of(s)[:1] == ["serve"], f"{name} inherits a check of /healthz"
            continue
        assert not hc.get("disable", False), name
        test = hc["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert test != ["NONE"], name


def test_volumes_and_secrets_are_declared_and_used(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    declared_secrets = compose.get("secrets") or {}
    used_volumes: set[str] = set()
    used_secrets: set[str] = set()
    for name, s in services.items():
        for m in mounts_of(s):
            if m.kind == "volume":
                assert m.source in declared_volumes, f"{name}: volume {m.source} not declared"
                used_volumes.add(m.source)
            elif m.kind == "bind":
                assert (ROOT / m.source).exists(), f"{name}: {m.source} is not in the repository"
        for secret in secrets_of(s):
            assert secret in declared_secrets, f"{name}: secret {secret} not declared"
            used_secrets.add(secret)
    assert used_volumes == declared_volumes
    assert used_secrets == set(declared_secrets)
    for name, secret in declared_secrets.items():
        # Files made by deploy/init-secrets.sh, kept out of images.
        assert set(secret) == {"file"}, name
        assert secret["file"] == f"./secrets/{name}"
    assert "secrets/" in dockerignore_patterns()


def test_the_api_uses_the_postgres_service(services: dict[str, dict[str, Any]]) -> None:
    api, pg = env_of(services["api"]), env_of(services["postgres"])
    url = urllib.parse.urlsplit(api["LEDGER_DATABASE_URL"])
    assert url.scheme == "postgresql+psycopg"
    assert url.hostname == "postgres" and "postgres" in services
    assert url.port == 5432
    assert url.password is None
    assert url.username == pg["POSTGRES_USER"]
    assert url.path == "/" + pg["POSTGRES_DB"]
    assert depends_of(services["api"])["postgres"] == "service_healthy"
    # The password reaches libpq through the entrypoint, from the secret postgres uses.
    assert api["DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert pg["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "postgres_password" in secrets_of(services["api"])
    assert "postgres_password" in secrets_of(services["postgres"])


def test_the_api_settings_are_real_settings(services: dict[str, dict[str, Any]]) -> None:
    """Every LEDGER_* variable names a setting (a misspelt one would be ignored)."""
    fields = {f"LEDGER_{name.upper()}" for name in Settings.model_fields}
    env = env_of(services["api"])
    assert {k for k in env if k.startswith("LEDGER_")} <= fields
    sample = {"LEDGER_ORIGIN": ORIGIN, "LEDGER_LOG_VKEY": "unused"}
    values = {k: interpolate(v, sample) for k, v in env.items() if k.startswith("LEDGER_")}
    settings = Settings(**{k.removeprefix("LEDGER_").lower(): v for k, v in values.items()})
    assert settings.origin == ORIGIN
    assert str(settings.log_key_path) == "/run/secrets/log_key"
    assert "log_key" in secrets_of(services["api"])
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    assert not settings.is_sqlite


def test_no_password_in_the_compose_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for m in re.finditer(r"[a-z+]+://[^\s/@]*@", text):
        assert ":" not in m.group(0).split("://", 1)[1], f"a password in a URL: {m.group(0)}"
    for name, (op, arg) in variables(text).items():
        if re.search(r"PASS|SECRET|TOKEN", name):
            assert op is None or op.endswith("?"), f"{name} has a default: {arg}"
    for name, s in compose["services"].items():
        for key, value in env_of(s).items():
            if re.search(r"PASS|SECRET|TOKEN|KEY", key) and key not in ("LEDGER_LOG_VKEY",):
                assert key.endswith(("_FILE", "_PATH")), f"{name}: {key} holds a value"
                assert value.startswith("/run/secrets/"), f"{name}: {key}={value}"
    # The well-known development password lives only in the development override.
    dev = load_compose(COMPOSE_DEV)
    assert "DEVELOPMENT ONLY" in COMPOSE_DEV.read_text(encoding="utf-8").splitlines()[0]
    assert dev["secrets"]["postgres_password"]["file"] == "./deploy/dev/postgres_password"
    assert "deploy/dev" not in text


def test_containers_are_read_only_non_root_with_tmpfs(services: dict[str, dict[str, Any]]) -> None:
    image_env = dockerfile_final_stage().env()
    for name in ("api", "mirror", "web", "proxy"):
        s = services[name]
        assert s.get("read_only") is True, name
        assert s.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in s.get("security_opt", []), name
        tmpfs = {m.target for m in mounts_of(s) if m.kind == "tmpfs"}
        assert "/tmp" in tmpfs, name
    # The api writes only its data directory (a volume) and /tmp.
    api_env = {**image_env, **env_of(services["api"])}
    targets = {m.target: m for m in mounts_of(services["api"])}
    assert targets[api_env["LEDGER_DATA_DIR"]].kind == "volume"
    assert "user" not in services["api"]  # the image's USER
    # The mirror writes its directory, a volume that nginx mounts read-only.
    mirror_dir = command_of(services["mirror"])[2]
    mirror_mount = {m.target: m for m in mounts_of(services["mirror"])}[mirror_dir]
    assert mirror_mount.kind == "volume" and not mirror_mount.read_only
    # nginx: an unprivileged user; pid file, temp files and cache on tmpfs.
    web = services["web"]
    assert web["user"].split(":")[0] not in ("0", "root")
    web_tmpfs = {m.target for m in mounts_of(web) if m.kind == "tmpfs"}
    conf = nginx_config()
    pid = conf.first("pid").args[0]
    assert any(pid.startswith(t + "/") for t in web_tmpfs), pid
    assert "/var/cache/nginx" in web_tmpfs


def test_depends_on_waits_for_healthy_services(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "api": {"postgres"},
        "mirror": {"api"},
        "web": {"mirror"},
        "proxy": {"api", "web"},
    }
    for name, s in services.items():
        deps = depends_of(s)
        assert set(deps) == expected.get(name, set()), name
        for dep, condition in deps.items():
            assert condition == "service_healthy", f"{name} -> {dep}"
            target = services[dep]
            assert "healthcheck" in target or command_of(target)[:1] == ["serve"]


def test_only_the_proxy_publishes_ports(services: dict[str, dict[str, Any]]) -> None:
    """The api and the mirror's web server are reached through the TLS proxy only."""
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"proxy"}
    for s in services.values():
        assert s.get("network_mode") != "host"
        assert not s.get("privileged", False)
    ports = [str(p) for p in services["proxy"]["ports"]]
    assert sorted(int(p.rsplit(":", 1)[1]) for p in ports) == [8080, 8443]
    # the proxy forwards to the ports the api and the web server listen on
    assert env_of(services["api"])["LEDGER_PORT"] == "8000"
    listen = nginx_config().server().first("listen").args[0]
    assert int(listen.rsplit(":", 1)[-1]) == 8080
    proxy = (DEPLOY / "proxy.conf").read_text(encoding="utf-8")
    assert "server api:8000;" in proxy and "server web:8080;" in proxy


def test_the_api_trusts_the_compose_network_the_proxy_is_on(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    (subnet,) = [c["subnet"] for c in compose["networks"]["default"]["ipam"]["config"]]
    trusted = env_of(services["api"])["LEDGER_TRUSTED_PROXIES"]
    assert re.fullmatch(r"\$\{LEDGER_TRUSTED_PROXIES:-" + re.escape(subnet) + r"\}", trusted)


def test_postgres_durability_and_readiness(services: dict[str, dict[str, Any]]) -> None:
    pg = services["postgres"]
    cmd = command_of(pg)
    assert cmd[0] == "postgres"
    settings = dict(cmd[i + 1].split("=", 1) for i, c in enumerate(cmd) if c == "-c")
    assert settings["fsync"] == "on"
    assert settings["synchronous_commit"] == "on"
    assert settings["full_page_writes"] == "on"
    assert "POSTGRES_PASSWORD" not in env_of(pg)
    test = pg["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert {m.target for m in mounts_of(pg)} == {"/var/lib/postgresql/data"}


def test_the_mirror_and_the_web_server(services: dict[str, dict[str, Any]]) -> None:
    cmd = command_of(services["mirror"])
    assert cmd[:3] == ["mirror", "http://api:8000", "/mirror"]
    # The public vkey, required: the mirror accepts checkpoints signed by it only.
    assert variables(cmd[cmd.index("--log-key") + 1]) == {
        "LEDGER_LOG_VKEY": (":?", variables(" ".join(cmd))["LEDGER_LOG_VKEY"][1])
    }
    assert int(cmd[cmd.index("--watch") + 1]) > 0
    assert not secrets_of(services["mirror"])  # the mirror needs only the public vkey
    web = {m.target: m for m in mounts_of(services["web"])}
    root = nginx_config().server().first("root").args[0]
    assert web[root].source == "mirror" and web[root].read_only
    conf = web["/etc/nginx/nginx.conf"]
    assert conf.kind == "bind" and conf.read_only
    assert (ROOT / conf.source).resolve() == NGINX_CONF
    # The web healthcheck asks the /healthz that nginx.conf answers.
    assert any("/healthz" in part for part in services["web"]["healthcheck"]["test"])
    assert nginx_config().server().location("= /healthz") is not None


def test_env_example_lists_every_variable_and_no_secret() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    used = variables(text)
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    assert set(used) <= listed, set(used) - listed
    required = {name for name, (op, _) in used.items() if op and op.endswith("?")}
    assert required == {"LEDGER_ORIGIN", "LEDGER_LOG_VKEY"}
    for line in example.splitlines():
        m = re.match(r"#? ?([A-Z][A-Z0-9_]*)=(.*)", line)
        if m is None:
            continue
        if m.group(1) in required:
            assert m.group(2) == "", f"{m.group(1)} must be set by the operator"
        assert not re.search(r"PASS|SECRET|TOKEN", m.group(1)), line


def test_the_development_override_only_adds_development_defaults() -> None:
    dev = load_compose(COMPOSE_DEV)
    base = load_compose(COMPOSE)
    assert set(dev["services"]) <= set(base["services"])
    assert set(dev.get("secrets", {})) <= set(base["secrets"])
    assert (ROOT / dev["secrets"]["postgres_password"]["file"]).is_file()
    for s in dev["services"].values():
        for spec in s.get("ports", []):
            assert str(spec).startswith("127.0.0.1:"), spec


# --- Dockerfile --------------------------------------------------------------------------


@dataclass
class Instruction:
    name: str
    flags: dict[str, str]
    args: str

    def json_args(self) -> list[str] | None:
        """The exec form's list (``["a", "b"]``), or None for the shell form."""
        text = self.args.strip()
        if text.startswith("["):
            value = json.loads(text)
            assert isinstance(value, list)
            return [str(v) for v in value]
        return None


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [s for s in self.steps if s.name == name]

    def one(self, name: str) -> Instruction | None:
        found = self.all(name)
        assert len(found) <= 1, f"{name} appears {len(found)} times"
        return found[0] if found else None

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for step in self.all("ENV"):
            for word in shlex.split(step.args):
                key, _, value = word.partition("=")
                env[key] = value
        return env


_FLAG = re.compile(r"--([a-z-]+)=(\S+)\s+")


def parse_dockerfile(text: str) -> list[Stage]:
    """The Dockerfile's stages and their instructions (continuations joined)."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in lines:
        name, _, rest = line.partition(" ")
        name = name.upper()
        flags: dict[str, str] = {}
        while m := _FLAG.match(rest):
            flags[m.group(1)] = m.group(2)
            rest = rest[m.end() :]
        if name == "FROM":
            words = rest.split()
            stage_name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], stage_name))
            continue
        assert stages, f"{name} before FROM"
        stages[-1].steps.append(Instruction(name, flags, rest))
    return stages


def dockerfile_stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def dockerfile_final_stage() -> Stage:
    return dockerfile_stages()[-1]


def dockerignore_patterns() -> list[str]:
    out = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def dockerignored(relpath: str) -> bool:
    """Whether .dockerignore keeps ``relpath`` out of the build context (no ``!`` rules)."""
    parts = relpath.split("/")
    for pattern in dockerignore_patterns():
        assert not pattern.startswith("!"), "exceptions are not supported here"
        p = pattern.rstrip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if p.startswith("**/"):
                if any(fnmatch.fnmatchcase("/".join(parts[j:i]), p[3:]) for j in range(i)):
                    return True
            elif fnmatch.fnmatchcase(prefix, p):
                return True
    return False


def test_dockerfile_shape() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage"
    for stage in stages:
        assert stage.base == "python:3.11-slim"
    final = stages[-1]
    # Not root: a numeric user, so that runtimes can check it without /etc/passwd.
    user = final.all("USER")[-1].args.split(":")
    assert user[0].isdigit() and int(user[0]) != 0
    assert int(user[0]) == LEDGER_UID
    # The log key comes from a Docker secret; the data directory is /data.
    env = final.env()
    assert env["LEDGER_LOG_KEY_PATH"] == "/run/secrets/log_key"
    assert env["LEDGER_DATA_DIR"] == "/data"
    fields = {f"LEDGER_{name.upper()}" for name in Settings.model_fields}
    assert {k for k in env if k.startswith("LEDGER_")} <= fields
    # `ledger serve` through the entrypoint script.
    entrypoint, cmd = final.one("ENTRYPOINT"), final.one("CMD")
    assert entrypoint is not None and cmd is not None
    assert entrypoint.json_args() == ["/usr/local/bin/ledger-entrypoint"]
    assert cmd.json_args() == ["serve"]
    copy = [
        s for s in final.all("COPY") if s.args.split()[-1] == "/usr/local/bin/ledger-entrypoint"
    ]
    assert len(copy) == 1 and copy[0].args.split()[0] == "deploy/docker-entrypoint.sh"
    # HEALTHCHECK with python (the slim image has no curl), on /healthz.
    hc = final.one("HEALTHCHECK")
    assert hc is not None
    hc_cmd = healthcheck_command()
    assert hc_cmd[0] == "python" and "/healthz" in hc_cmd[-1]
    assert "LEDGER_PORT" in hc_cmd[-1]  # follows the configured port
    # No secret or key baked in.
    for stage in stages:
        for step in stage.all("COPY") + stage.all("ADD"):
            assert not re.search(r"secret|\.key\b|\.pem\b|\.env\b", step.args), step.args
        assert not stage.all("ADD"), "COPY, not ADD"


def healthcheck_command() -> list[str]:
    hc = dockerfile_final_stage().one("HEALTHCHECK")
    assert hc is not None
    words = hc.args.split(None, 1)
    assert words[0] == "CMD"
    cmd = json.loads(words[1])
    assert isinstance(cmd, list)
    return [str(c) for c in cmd]


def test_dockerfile_copies_sources_that_exist_and_are_in_the_context() -> None:
    for stage in dockerfile_stages():
        for step in stage.all("COPY"):
            if "from" in step.flags:
                continue
            *sources, _ = step.args.split()
            for src in sources:
                assert (ROOT / src).exists(), src
                assert not dockerignored(src), f"{src} is excluded by .dockerignore"
    # What the wheel is built from is complete: every package of pyproject.
    build = dockerfile_stages()[0]
    copied = {Path(src).name for s in build.all("COPY") for src in s.args.split()[:-1]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert {"pyproject.toml", project["project"]["readme"], *packages} <= copied
    # And what must never be in an image stays out of the context.
    for path in (".env", "secrets/log_key", "ledger-data/log.key", ".git/config", "x/y.pem"):
        assert dockerignored(path), path
    for path in ("ledger/core/ed25519.py", "api/migrations/versions/0001_initial.py", "README.md"):
        assert not dockerignored(path), path


# --- the Dockerfile's install steps, for real ---------------------------------------


@dataclass
class Emulated:
    """A directory tree standing for the images' filesystems, and the venvs doing the steps."""

    root: Path
    runtime: Path  # the runtime stage's environment

    def bin(self, name: str) -> Path:
        return self.runtime / "bin" / name


def _map(path: str, root: Path) -> str:
    return str(root / path.lstrip("/")) if path.startswith("/") else path


def _pip_env(isolated: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    if isolated:
        # The runtime stage installs from its wheels only: no index, no local config.
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run_pip_step(step: Instruction, venv: Path, root: Path, cwd: Path, isolated: bool) -> None:
    words = shlex.split(step.args)
    assert words[0] == "pip", f"only pip steps are emulated: {step.args}"
    args = []
    for w in words[1:]:
        if w.startswith("--") and "=" in w:
            key, value = w.split("=", 1)
            args.append(f"{key}={_map(value, root)}")
        else:
            args.append(_map(w, root))
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", *args, "--no-input", "-q"],
        cwd=cwd,
        env=_pip_env(isolated),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, f"RUN {step.args}\n{out.stdout}\n{out.stderr}"


def emulate_dockerfile(tmp: Path) -> Emulated:
    """Run the Dockerfile's COPY and pip steps, stage by stage, in fresh virtual envs.

    Each stage's absolute paths live under ``tmp/<stage>/``; a stage's ``pip`` is
    the ``pip`` of a fresh virtual environment (the base image's Python). RUN steps
    other than pip (creating the user) are checked not to install anything.
    """
    stages = dockerfile_stages()
    roots: dict[str, Path] = {}
    runtime: Path | None = None
    for i, stage in enumerate(stages):
        root = tmp / f"stage{i}"
        root.mkdir()
        if stage.name:
            roots[stage.name] = root
        venv = tmp / f"venv{i}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        workdir = root
        is_final = i == len(stages) - 1
        for step in stage.steps:
            if step.name == "WORKDIR":
                workdir = Path(_map(step.args.strip(), root))
                workdir.mkdir(parents=True, exist_ok=True)
            elif step.name == "COPY" and "from" not in step.flags:
                *sources, dest = step.args.split()
                target = Path(_map(dest, root)) if dest.startswith("/") else workdir / dest
                for src in sources:
                    path = ROOT / src
                    to = target / path.name if dest.endswith("/") else target
                    if path.is_dir():
                        shutil.copytree(
                            path, to, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                        )
                    else:
                        to.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, to)
            elif step.name == "RUN":
                if not step.args.startswith("pip "):
                    assert "pip" not in step.args, step.args
                    continue
                mount_root = root
                if "mount" in step.flags:
                    opts = dict(o.split("=", 1) for o in step.flags["mount"].split(","))
                    assert opts["type"] == "bind"
                    source = roots[opts["from"]] / opts["source"].lstrip("/")
                    link = Path(_map(opts["target"], root))
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(source, target_is_directory=True)
                _run_pip_step(step, venv, mount_root, workdir, isolated=is_final)
        if is_final:
            runtime = venv
    assert runtime is not None
    return Emulated(tmp, runtime)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Emulated:
    return emulate_dockerfile(tmp_path_factory.mktemp("image"))


@pytest.mark.slow
def test_dockerfile_install_steps_give_working_commands(image: Emulated) -> None:
    check = subprocess.run(
        [str(image.bin("python")), "-m", "pip", "check"],
        env=_pip_env(True),
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    for command in ("ledger", "ledger-verify"):
        out = subprocess.run(
            [str(image.bin(command)), "--help"], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, f"{command} --help: {out.stderr}"
        assert "usage" in out.stdout.lower(), out.stdout
    # The image runs the installed package, not a source tree.
    where = subprocess.run(
        [
            str(image.bin("python")),
            "-c",
            "import api, ledger; print(api.__file__, ledger.__file__)",
        ],
        cwd=image.root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" in where.stdout and str(ROOT) not in where.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_image_healthcheck_passes_on_ledger_serve_through_the_entrypoint(
    image: Emulated, tmp_path: Path
) -> None:
    """ENTRYPOINT + CMD (`ledger serve`) with the image's settings; then its HEALTHCHECK."""
    secrets, data = tmp_path / "secrets", tmp_path / "data"
    secrets.mkdir()
    key = secrets / "log_key"
    made = subprocess.run(
        [str(image.bin("python")), str(DEPLOY / "log_key.py"), "create", str(key), ORIGIN],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    vkey = made.stdout.strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o400
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "VIRTUAL_ENV"))}
    env.update(dockerfile_final_stage().env())
    env.update(
        PATH=f"{image.runtime / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        LEDGER_ORIGIN=ORIGIN,
        LEDGER_DATA_DIR=str(data),
        LEDGER_LOG_KEY_PATH=str(key),
        LEDGER_HOST="127.0.0.1",
        LEDGER_PORT=str(port),
        TMPDIR=str(tmp_path),
    )
    cmd = dockerfile_final_stage().one("CMD")
    assert cmd is not None
    args = cmd.json_args() or []
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        ["sh", str(ENTRYPOINT), *args],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        check = healthcheck_command()
        check[0] = str(image.bin("python"))
        deadline = time.monotonic() + 90
        result = None
        while time.monotonic() < deadline and server.poll() is None:
            result = subprocess.run(check, env=env, capture_output=True, text=True, check=False)
            if result.returncode == 0:
                break
            time.sleep(0.5)
        output = (tmp_path / "server.log").read_text(errors="replace")
        assert server.poll() is None, f"the server stopped:\n{output}"
        assert result is not None and result.returncode == 0, f"{result}\n{output}"
        assert (data / "log.vkey").read_text().strip() == vkey
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/checkpoint", timeout=5) as r:
            assert r.read().startswith(f"{ORIGIN}\n0\n".encode())
    finally:
        # The server (uvicorn and its workers) is a session of its own: end all of it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    # A stopped server fails the check (exit 1, as Docker expects, never 2).
    failed = subprocess.run(check, env=env, capture_output=True, text=True, check=False)
    assert failed.returncode == 1


# --- deploy/docker-entrypoint.sh --------------------------------------------------------


def _fake_ledger(bin_dir: Path) -> None:
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "ledger"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "args: $*"\n'
        'echo "PGPASSFILE=${PGPASSFILE:-unset}"\n'
        'if [ -n "${PGPASSFILE:-}" ]; then\n'
        '  echo "mode: $(stat -c %a "$PGPASSFILE")"\n'
        '  printf "line: %s\\n" "$(cat "$PGPASSFILE")"\n'
        "fi\n"
    )
    fake.chmod(0o755)


def _entrypoint(
    tmp_path: Path, password: bytes | None, *args: str
) -> subprocess.CompletedProcess[str]:
    _fake_ledger(tmp_path / "bin")
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    if password is not None:
        secret = tmp_path / "postgres_password"
        secret.write_bytes(password)
        env["DATABASE_PASSWORD_FILE"] = str(secret)
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, check=False
    )


def test_entrypoint_runs_ledger_with_the_arguments(tmp_path: Path) -> None:
    out = _entrypoint(tmp_path, None, "serve", "--port", "9000")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ["args: serve --port 9000", "PGPASSFILE=unset"]


def test_entrypoint_hands_the_password_secret_to_libpq(tmp_path: Path) -> None:
    out = _entrypoint(tmp_path, b"pa:ss\\wo rd\n", "serve")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert lines["args"] == "serve"
    assert lines["mode"] == "600"  # libpq ignores a password file others can read
    # Any host, port, database and user; ':' and '\' escaped (PostgreSQL, "The Password File").
    assert lines["line"] == "*:*:*:*:pa\\:ss\\\\wo rd"
    pgpass = out.stdout.split("PGPASSFILE=")[1].split()[0]
    assert Path(pgpass).parent == tmp_path


@pytest.mark.parametrize(
    ("password", "message"),
    [(b"", "empty"), (b"\n", "empty"), (b"one\ntwo\n", "more than one line")],
)
def test_entrypoint_refuses_a_bad_password_file(
    tmp_path: Path, password: bytes, message: str
) -> None:
    out = _entrypoint(tmp_path, password, "serve")
    assert out.returncode == 2
    assert message in out.stderr and "args:" not in out.stdout


def test_entrypoint_refuses_a_missing_password_file(tmp_path: Path) -> None:
    _fake_ledger(tmp_path / "bin")
    out = subprocess.run(
        ["sh", str(ENTRYPOINT), "serve"],
        env={
            "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
            "DATABASE_PASSWORD_FILE": str(tmp_path / "missing"),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "not a readable file" in out.stderr
    assert "args:" not in out.stdout


# --- deploy/init-secrets.sh and deploy/log_key.py --------------------------------------

_FAKE_DOCKER = """\
import os, sys
log = os.environ["FAKE_DOCKER_LOG"]
args = sys.argv[1:]
with open(log, "a") as f:
    f.write(" ".join(args) + "\\n")
if args[:2] == ["image", "inspect"]:
    sys.exit(0)
if args[:1] != ["run"]:
    sys.exit("fake docker: unexpected " + " ".join(args))
mounts, entry, i = {}, None, 1
while i < len(args) and args[i].startswith("-"):
    if args[i] in ("--rm", "-i"):
        i += 1
        continue
    value = args[i + 1]
    if args[i] in ("--volume", "-v"):
        host, container = value.split(":")[:2]
        mounts[container] = host
    elif args[i] == "--entrypoint":
        entry = value
    i += 2
assert entry == "python", entry
rest = args[i + 1:]
def host_path(p):
    for container, host in mounts.items():
        if p == container or p.startswith(container + "/"):
            return host + p[len(container):]
    return p
rest = [host_path(a) for a in rest]
if os.geteuid() != 0 and "--owner" in rest:
    j = rest.index("--owner")
    del rest[j:j + 2]
os.execv(sys.executable, [sys.executable] + rest)
"""


def _init_secrets(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PATH"] = f"{repo / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["FAKE_DOCKER_LOG"] = str(repo / "docker.log")
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        ["sh", str(repo / "deploy" / "init-secrets.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_init_secrets_creates_the_secrets_once(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    for name in ("init-secrets.sh", "log_key.py", ".env.example"):
        shutil.copy2(DEPLOY / name, repo / "deploy" / name)
    (repo / "bin").mkdir()
    docker = repo / "bin" / "docker"
    docker.write_text(f"#!{sys.executable}\n{_FAKE_DOCKER}")
    docker.chmod(0o755)

    out = _init_secrets(repo, ORIGIN)
    assert out.returncode == 0, out.stdout + out.stderr
    secrets = repo / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    password = secrets / "postgres_password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o444
    assert re.fullmatch(r"[A-Za-z0-9]{40}\n", password.read_text())
    key = secrets / "log_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o400
    if os.geteuid() == 0:
        assert (key.stat().st_uid, key.stat().st_gid) == (LEDGER_UID, LEDGER_UID)
    vkey = out.stdout.strip().splitlines()[-1]
    verifier = parse_vkey(vkey)
    assert verifier.name == ORIGIN
    env_file = repo / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    env_lines = env_file.read_text().splitlines()
    assert f"LEDGER_ORIGIN={ORIGIN}" in env_lines
    assert f"LEDGER_LOG_VKEY={vkey}" in env_lines
    # The key is made and read without a network.
    runs = [
        line for line in (repo / "docker.log").read_text().splitlines() if line.startswith("run")
    ]
    assert len(runs) == 2 and all("--network none" in line for line in runs)

    # A second run keeps everything, and says what to put in the existing .env.
    before = {p.name: p.read_bytes() for p in (password, key, env_file)}
    again = _init_secrets(repo)  # the origin now comes from .env
    assert again.returncode == 0, again.stdout + again.stderr
    assert "postgres_password exists: kept" in again.stdout
    assert "log_key exists: kept" in again.stdout
    assert f"LEDGER_LOG_VKEY={vkey}" in again.stdout
    assert {p.name: p.read_bytes() for p in (password, key, env_file)} == before


def test_log_key_never_replaces_a_key(tmp_path: Path) -> None:
    script = DEPLOY / "log_key.py"
    key = tmp_path / "log_key"
    run = [sys.executable, str(script)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(
        [*run, "create", str(key), ORIGIN], env=env, capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    data = key.read_bytes()
    second = subprocess.run(
        [*run, "create", str(key), ORIGIN], env=env, capture_output=True, text=True, check=False
    )
    assert second.returncode == 1 and "not replacing" in second.stderr
    assert key.read_bytes() == data
    shown = subprocess.run(
        [*run, "vkey", str(key), ORIGIN], env=env, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0 and shown.stdout == first.stdout
    key.chmod(0o644)  # the server would refuse it: so does the check
    loose = subprocess.run(
        [*run, "vkey", str(key), ORIGIN], env=env, capture_output=True, text=True, check=False
    )
    assert loose.returncode == 1 and loose.stdout == ""


def test_deploy_scripts_parse() -> None:
    for script in (ENTRYPOINT, DEPLOY / "init-secrets.sh"):
        assert script.read_text().startswith("#!/bin/sh\n")
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
        out = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr


# --- deploy/nginx.conf --------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def first(self, name: str) -> Directive:
        found = self.all(name)
        assert found, f"no {name} in {self.name}"
        return found[0]

    def server(self) -> Directive:
        (server,) = self.first("http").all("server")
        return server

    def location(self, spec: str) -> Directive | None:
        for loc in self.all("location"):
            if " ".join(loc.args) == spec:
                return loc
        return None


_NGINX_TOKEN = re.compile(
    r"\s+|#[^\n]*|\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)'|([{};])|([^\s{};\"'#]+)"
)


def parse_nginx(text: str) -> Directive:
    """nginx's configuration syntax: directives, quoted arguments, blocks."""
    stack: list[Directive] = [Directive("main", [], [])]
    words: list[str] = []
    pos = 0
    while pos < len(text):
        m = _NGINX_TOKEN.match(text, pos)
        assert m, f"cannot parse nginx.conf at {text[pos : pos + 30]!r}"
        pos = m.end()
        quoted = m.group(1) if m.group(1) is not None else m.group(2)
        if quoted is not None:
            words.append(quoted)
        elif m.group(4) is not None:
            words.append(m.group(4))
        elif m.group(3) == ";":
            assert words, "empty directive"
            assert stack[-1].block is not None
            stack[-1].block.append(Directive(words[0], words[1:]))
            words = []
        elif m.group(3) == "{":
            block = Directive(words[0], words[1:], [])
            assert stack[-1].block is not None
            stack[-1].block.append(block)
            stack.append(block)
            words = []
        elif m.group(3) == "}":
            assert not words and len(stack) > 1, "unbalanced }"
            stack.pop()
    assert len(stack) == 1 and not words, "unterminated block"
    return stack[0]


def nginx_config() -> Directive:
    return parse_nginx(NGINX_CONF.read_text(encoding="utf-8"))


def match_location(server: Directive, uri: str) -> Directive:
    """The location nginx picks for ``uri``: exact, then regexes in order, then prefix."""
    prefix: Directive | None = None
    for loc in server.all("location"):
        if loc.args[0] == "=" and loc.args[1] == uri:
            return loc
        longer = prefix is None or len(loc.args[0]) > len(prefix.args[0])
        if len(loc.args) == 1 and uri.startswith(loc.args[0]) and longer:
            prefix = loc
    for loc in server.all("location"):
        if loc.args[0] == "~" and re.search(loc.args[1], uri):
            return loc
    assert prefix is not None, uri
    return prefix


@dataclass
class Answer:
    default_type: str
    headers: dict[str, str]
    returns: list[str] | None


def answer_for(uri: str) -> Answer:
    conf = nginx_config()
    http = conf.first("http")
    server = conf.server()
    loc = match_location(server, uri)
    types = [t.args[0] for level in (http, server, loc) for t in level.all("default_type")]
    # add_header is inherited only by levels that have none of their own.
    levels = [loc, server, http]
    headers: dict[str, str] = {}
    for level in levels:
        found = level.all("add_header")
        if found:
            headers = {d.args[0].lower(): d.args[1] for d in found}
            break
    returns = loc.all("return")
    return Answer(types[-1], headers, returns[0].args if returns else None)


def _max_age(cache_control: str) -> int:
    m = re.search(r"max-age=(\d+)", cache_control)
    assert m, cache_control
    return int(m.group(1))


def test_nginx_tlog_tiles_content_types_and_cache_rules() -> None:
    checkpoint = answer_for("/checkpoint")
    assert checkpoint.returns is None
    assert checkpoint.default_type == "text/plain; charset=utf-8"
    cc = checkpoint.headers["cache-control"]
    assert "immutable" not in cc and _max_age(cc) <= 10
    assert nginx_config().first("http").first("types").block == []  # no MIME guessing

    full, partial = [], []
    for n in (0, 1, 255, 256, 999, 1000, 1234067):
        for level in (0, 1, 2, 5):
            try:
                full.append(tiles.tile_path(level, n))
            except FormatError:
                continue  # beyond any tree of 2^63 - 1 leaves
            partial += [tiles.tile_path(level, n, w) for w in (1, 88, 255)]
        full.append(tiles.entries_path(n))
        partial += [tiles.entries_path(n, w) for w in (1, 88, 255)]
    for t in tiles.tiles_for_size(70_000) + tiles.bundles_for_size(70_000):
        (partial if t.is_partial else full).append(t.path)
    for path in full:
        a = answer_for("/" + path)
        assert a.returns is None, path
        assert a.default_type == "application/octet-stream", path
        cc = a.headers["cache-control"]
        assert "immutable" in cc and _max_age(cc) == 31_536_000, path
        assert a.headers["access-control-allow-origin"] == "*"
    for path in partial:
        a = answer_for("/" + path)
        assert a.returns is None, path
        assert a.default_type == "application/octet-stream", path
        cc = a.headers["cache-control"]
        assert "immutable" not in cc and 0 < _max_age(cc) <= 300, path
    # The static site is served as HTML and CSS, never guessed.
    assert answer_for("/").default_type == "text/html; charset=utf-8"
    for uri in ("/index.html", "/verify.html", "/statements/" + "ab" * 32 + "-2.html"):
        assert answer_for(uri).default_type == "text/html; charset=utf-8", uri
    assert answer_for("/assets/site.css").default_type == "text/css; charset=utf-8"
    # Nothing else of the mirror directory is served.
    for uri in (
        "/state.json",
        "/.site-cache.json",
        "/.ledger-mirror/state.json",
        "/statements/" + "ab" * 32 + "-0.html",
        "/statements/x.html",
        "/tile/0/x001",
        "/tile/entries",
        "/tile/0/001.p",
        "/tile/a/000",
    ):
        assert answer_for(uri).returns == ["404"], uri
    # A missing tile (not yet in the tree) must not be cached.
    server = nginx_config().server()
    (error_page,) = server.all("error_page")
    assert error_page.args[0] == "404"
    handler = server.location(error_page.args[1])
    assert handler is not None
    no_store = [d for d in handler.all("add_header") if d.args[0].lower() == "cache-control"]
    assert no_store and no_store[0].args[1:] == ["no-store", "always"]


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"
)


@needs_nginx
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(NGINX), "-t", "-q", "-c", str(NGINX_CONF), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory nginx's unprivileged workers can read (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="ledger-nginx-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@needs_nginx
@pytest.mark.skipif(os.geteuid() != 0, reason="nginx needs root for its default temp paths")
def test_nginx_serves_a_mirror_that_ledger_verify_accepts(world_readable_dir: Path) -> None:
    f = LogFactory(seed="nginx")
    f.grow(300)  # one full bundle and tile, partial ones after
    mirror = f.write(world_readable_dir / "mirror")
    (mirror / "state.json").write_text("{}")  # something that must not be served
    with Mirror(mirror, Trust.from_vkeys([f.log_key.vkey])) as m:  # what `ledger mirror` adds
        build_site(mirror, m.state, [f.log_key.vkey])
    for p in [mirror, *mirror.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    port = _free_port()
    text = NGINX_CONF.read_text(encoding="utf-8")
    text = text.replace("listen 8080", f"listen 127.0.0.1:{port}")
    text = text.replace("/usr/share/nginx/mirror", str(mirror))
    text = text.replace("pid /tmp/nginx.pid", f"pid {world_readable_dir / 'nginx.pid'}")
    text = text.replace("access_log /dev/stdout", "access_log off")
    conf = world_readable_dir / "nginx.conf"
    conf.write_text(text)
    error_log = world_readable_dir / "error.log"
    server = subprocess.Popen(
        [str(NGINX), "-c", str(conf), "-e", str(error_log), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, _, _ = _get(base + "/healthz")
                break
            except OSError:
                assert server.poll() is None, error_log.read_text(errors="replace")
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        assert status == 200

        status, headers, body = _get(base + "/checkpoint")
        assert status == 200 and body == (mirror / "checkpoint").read_bytes()
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert headers["cache-control"] == "public, max-age=2"
        for path, immutable in [
            (tiles.tile_path(0, 0), True),
            (tiles.entries_path(0), True),
            (tiles.tile_path(0, 1, 44), False),
            (tiles.entries_path(1, 44), False),
            (tiles.tile_path(1, 0, 1), False),
        ]:
            status, headers, body = _get(f"{base}/{path}")
            assert status == 200, path
            assert body == (mirror / path).read_bytes()
            assert headers["content-type"] == "application/octet-stream"
            assert ("immutable" in headers["cache-control"]) is immutable, path
            assert headers["access-control-allow-origin"] == "*"
        # The static site: the index at /, statement pages and the stylesheet.
        status, headers, body = _get(base + "/")
        assert status == 200 and body == (mirror / "index.html").read_bytes()
        assert headers["content-type"] == "text/html; charset=utf-8"
        pages = sorted((mirror / "statements").glob("*.html"))
        assert pages
        js = sorted((mirror / "assets" / "js").rglob("*"))
        assert any(p.name == "verify-page.js" for p in js)
        for page in [mirror / "verify.html", mirror / "assets" / "site.css", *pages[:3], *js]:
            if page.is_dir():
                continue
            rel = page.relative_to(mirror).as_posix()
            status, headers, body = _get(f"{base}/{rel}")
            assert status == 200 and body == page.read_bytes(), rel
            assert headers["content-type"].startswith("text/"), rel
            if rel.endswith(".js"):  # module scripts run only with a JavaScript type
                assert headers["content-type"] == "text/javascript; charset=utf-8", rel
        for path in (
            tiles.tile_path(0, 2),
            tiles.entries_path(1),
            "state.json",
            ".site-cache.json",
            "statements/",
            "tile/0",
        ):
            status, headers, _ = _get(f"{base}/{path}")
            assert status == 404, path
            assert headers["cache-control"] == "no-store", path
        assert _get(base + "/checkpoint", "POST")[0] == 405

        verify = subprocess.run(
            [
                sys.executable,
                "-m",
                "ledger.verify.cli",
                "log",
                base,
                "--log-key",
                f.log_key.vkey,
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        report = json.loads(verify.stdout)
        assert (report["valid"], report["size"]) == (True, 300)
    finally:
        server.terminate()
        server.wait(timeout=20)


# --- SECURITY.md --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def security() -> str:
    return SECURITY.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    m = re.search(rf"^(#+) {re.escape(heading)}[^\n]*\n(.*?)(?=^#{{1,3}} |\Z)", text, re.M | re.S)
    assert m, f"no section {heading!r}"
    return m.group(2)


def test_security_reporting(security: str) -> None:
    report = _section(security, "Reporting a vulnerability")
    assert "placeholder" in report.lower() and "example.invalid" in report
    assert "90-day" in report or "90 days" in report


def test_security_threat_model_covers_every_attacker(security: str) -> None:
    model = security.split("## Threat model", 1)[1]
    for heading, words in {
        "The log operator": ["split view", "rewriting", "backdating", "consistency"],
        "The database": ["published-checkpoint", "refuses to start"],
        "A mirror": ["stale", "altered"],
        "The network": ["TLS", "integrity"],
        "A submitter": ["spam", "forged", "replayed", "rate limit", "record id"],
        "A stolen signatory key": ["rotation", "revocation", "stay counted"],
        "A stolen log key": ["fork", "new origin"],
    }.items():
        body = " ".join(_section(model, heading).lower().split())
        for word in words:
            assert word.lower() in body, f"{heading}: {word}"
    proves = _section(security, "What `ledger-verify` proves").lower()
    for word in ("does **not** prove", "self-claim", "out of band", "append-only"):
        assert word in proves, word
    assert "identity point" in _section(security, "The Ed25519 acceptance rule")
    durability = _section(security, "Durability")
    for word in ("WAL", "synchronous=FULL", "fsync", "synchronous_commit", "logs them"):
        assert word in durability, word
    # The witness is built, the log's gathering of cosignatures not: the text says both.
    flat = " ".join(security.split())
    assert "ledger witness serve" in flat
    assert "the log itself does not gather cosignatures" in flat


def test_security_md_agrees_with_the_code(security: str) -> None:
    flat = " ".join(security.split())
    assert f"{MAX_FUTURE_SKEW_S} seconds" in flat
    assert f"{DEFAULT_MAX_AGE_S // 86400} days" in flat
    assert f"{MAX_RECORD_SIZE:,} bytes" in flat
    engine = (ROOT / "api" / "storage" / "engine.py").read_text(encoding="utf-8")
    assert "PRAGMA synchronous = FULL" in engine and "journal_mode" in engine.lower()
    # Every file named exists, and every LEDGER_ variable is a setting.
    for doc in (SECURITY, DEPLOY / "README.md"):
        text = doc.read_text(encoding="utf-8")
        for name in re.findall(
            r"`((?:\.\./)?[\w.-]+(?:/[\w.-]+)*\.(?:py|sh|yml|md|conf|example))`", text
        ):
            base = doc.parent if name.startswith("..") else ROOT
            candidates = [base / name, DEPLOY / name, ROOT / name]
            assert any(p.exists() for p in candidates), f"{doc.name} names {name}"
        fields = {f"LEDGER_{n.upper()}" for n in Settings.model_fields}
        compose_vars = set(variables(COMPOSE.read_text(encoding="utf-8")))
        for var in re.findall(r"\bLEDGER_[A-Z_]+\b", text):
            assert var in fields or var in compose_vars, f"{doc.name} names {var}"
