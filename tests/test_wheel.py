"""The installed package works as documented (issue 14, "The installed package").

One test builds the wheel from a copy of the sources, checks what is in it (the demo's
example as package data, LICENSE, ``py.typed``, the one version), installs it into a
fresh virtual environment outside the checkout (no system site packages, no
PYTHONPATH), and runs, from a directory outside the checkout:

1. in the base install: ``ledger --help`` says which extra to install, exit 2, no
   traceback; ``ledger-verify --version`` and the package agree on the version;
2. with ``[server]``: ``ledger demo``, ``ledger serve`` on what it left until
   ``/readyz`` (``/healthz`` where there is none yet) answers, ``ledger-verify log``
   against it with the demo's ``log.vkey`` file, ``ledger mirror`` (with its static
   site) from it, and SIGTERM stops the server.

The build backend and the dependencies come from the package index pip is
configured with (``pip config list``; here a local mirror), as for any user. It takes
about 40 s on an idle 2-core machine (85 s with the machine loaded), most of it
installing ``[server]`` and the full demo (62 signatories).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from ledger import __version__

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md")
PACKAGES = ("ledger", "keys", "api", "cli")
EXAMPLE_FILES = ("README.md", "title.txt", "statement.txt", "signatories.csv")
TIMEOUT_S = 300
DEMO = "localhost/ledger-demo"  # cli.demo.DEMO_ORIGIN


def _env() -> dict[str, str]:
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("LEDGER_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=TIMEOUT_S
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    # From a copy of the sources, so that the build leaves nothing in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy2(ROOT / name, src / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            src / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache"),
        )
    dist = tmp_path / "dist"
    _ok(
        _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
            tmp_path,
            env,
        )
    )
    (wheel,) = dist.glob("endorsement_ledger-*.whl")
    return wheel


def _check_wheel_contents(wheel: Path) -> None:
    assert wheel.name == f"endorsement_ledger-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = f"endorsement_ledger-{__version__}.dist-info"
        metadata = z.read(f"{info}/METADATA").decode()
        assert z.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    for name in EXAMPLE_FILES:
        assert f"cli/examples/paris-call/{name}" in names
    assert {"ledger/py.typed", "keys/py.typed"} <= names
    assert f"\nVersion: {__version__}\n" in metadata
    assert "\nLicense-Expression: Apache-2.0\n" in metadata
    assert not any(n.startswith(("tests/", "examples/", "bench/")) for n in names)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float) -> str:
    """Poll /readyz (or /healthz, on a server without /readyz) until it answers 200."""
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ledger serve exited with {proc.returncode}"
        for path in ("/readyz", "/healthz"):
            try:
                with urllib.request.urlopen(url + path, timeout=2) as r:
                    if r.status == 200:
                        return path
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    continue  # no /readyz on this server: try /healthz
            except OSError:
                pass
            break
        time.sleep(0.2)
    raise AssertionError("ledger serve did not become ready")


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_venv(tmp_path: Path) -> None:
    env = _env()
    wheel = _build_wheel(tmp_path, env)
    _check_wheel_contents(wheel)

    venv = tmp_path / "venv"
    _ok(_run([sys.executable, "-m", "venv", str(venv)], tmp_path, env))
    bin_dir = venv / "bin"
    python, ledger, verify = (str(bin_dir / n) for n in ("python", "ledger", "ledger-verify"))
    run_dir = tmp_path / "run"  # outside the checkout: nothing imports from the sources
    run_dir.mkdir()
    assert not run_dir.is_relative_to(ROOT)

    # 1. The base install: the verifier only.
    _ok(_run([python, "-m", "pip", "install", "--no-input", "-q", str(wheel)], run_dir, env))
    where = _ok(_run([python, "-c", "import cli, ledger; print(cli.__file__)"], run_dir, env))
    assert Path(where.strip()).is_relative_to(venv)
    helped = _run([ledger, "--help"], run_dir, env)
    assert helped.returncode == 2, helped.stdout + helped.stderr
    assert "pip install 'endorsement-ledger[cli]'" in helped.stderr
    assert "Traceback" not in helped.stderr and helped.stdout == ""
    assert len(helped.stderr.strip().splitlines()) == 1
    assert _ok(_run([verify, "--version"], run_dir, env)).strip() == f"ledger-verify {__version__}"
    versions = _ok(
        _run(
            [
                python,
                "-c",
                "import importlib.metadata, ledger; "
                "print(ledger.__version__, importlib.metadata.version('endorsement-ledger'))",
            ],
            run_dir,
            env,
        )
    )
    assert versions.split() == [__version__, __version__]

    # 2. With the server extra: the demo, then serve its log and verify it.
    _ok(
        _run([python, "-m", "pip", "install", "--no-input", "-q", f"{wheel}[server]"], run_dir, env)
    )
    assert _ok(_run([ledger, "--version"], run_dir, env)).strip() == f"ledger {__version__}"
    env["LEDGER_CONFIG_DIR"] = str(tmp_path / "config")
    demo = _run([ledger, "demo", "--data-dir", "paris-demo"], run_dir, env)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "the server's tallies match the verified log's" in demo.stderr
    data = run_dir / "paris-demo"
    vkey_file = data / "log.vkey"

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [ledger, "serve", "--data-dir", "paris-demo", "--port", str(port), "--origin", DEMO],
            cwd=run_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(url, proc, time.monotonic() + 60)
        with urllib.request.urlopen(url + "/openapi.json", timeout=10) as r:
            assert json.load(r)["info"]["version"] == __version__
        verified = _run([verify, "log", url, "--log-key", str(vkey_file), "--json"], run_dir, env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert '"valid":true' in verified.stdout
        # The mirror and its static site (templates and assets are package data too).
        mirrored = _run(
            [ledger, "mirror", url, "mirror", "--log-key", str(vkey_file), "--jobs", "1"],
            run_dir,
            env,
        )
        assert mirrored.returncode == 0, mirrored.stdout + mirrored.stderr
        assert (run_dir / "mirror" / "index.html").is_file()
        assert (run_dir / "mirror" / "verify.html").is_file()
        # SIGTERM: a graceful shutdown, then the process ends by that signal, as
        # uvicorn (and every ledger command, ledger.verify.cli.run_stoppable) does.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    served = (tmp_path / "serve.log").read_text(encoding="utf-8", errors="replace")
    assert "Application shutdown complete" in served and "Traceback" not in served
