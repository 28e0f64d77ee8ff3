"""The verifier installs and runs with nothing but ``cryptography`` (issue 5, item 1).

A fresh virtual environment, *without* system site packages, gets the project
installed without extras (``pip install <project>``: cryptography comes from the
package index pip is configured with), and its ``ledger-verify`` verifies a log
that the test process wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from logfactory import LogFactory

ROOT = Path(__file__).resolve().parent.parent
SERVER_PACKAGES = ("fastapi", "sqlmodel", "sqlalchemy", "pydantic", "httpx", "click", "rich")


@pytest.mark.slow
def test_ledger_verify_in_a_fresh_venv_with_only_cryptography(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # Install from a copy of the sources, so that the build leaves nothing in the tree.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    for package in ("ledger", "keys", "api", "cli"):
        if (ROOT / package).is_dir():
            shutil.copytree(
                ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__")
            )
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-input", "-q", str(src)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    # What got installed: the project and cryptography (with its own dependencies).
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"endorsement-ledger", "cryptography"} <= names
    assert not names & set(SERVER_PACKAGES), names

    f = LogFactory(seed="venv")
    f.grow(600)
    log = f.write(tmp_path / "log")
    out = subprocess.run(
        [str(bin_dir / "ledger-verify"), "log", str(log), "--log-key", f.log_key.vkey, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["valid"], report["size"], report["entries_checked"]) == (True, 600, 600)

    # It really runs from the fresh environment, and still rejects a damaged log.
    where = subprocess.run(
        [str(python), "-c", "import ledger; print(ledger.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in where.stdout
    (log / "tile/0/000").write_bytes(bytes(8192))
    out = subprocess.run(
        [str(bin_dir / "ledger-verify"), "log", str(log), "--log-key", f.log_key.vkey],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert "tile/0/000" in out.stderr
