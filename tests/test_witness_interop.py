"""Interoperability of the witness with Go's golang.org/x/mod/sumdb/{note,tlog}.

Go plays the log (tests/interop/witnesslog/main.go): its tlog builds the tree and the
consistency proofs, its note signs the checkpoints; our witness (the process) must
cosign every step. Go's note.Open then checks the checkpoint our witness serves, with a
cosignature/v1 verifier written in Go from C2SP tlog-cosignature.

Skips when `go` is missing, unless LEDGER_REQUIRE_INTEROP is set (as
tests/test_interop_go.py).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_witness_kit import WitnessProcess, verify_cosignature

SRC = Path(__file__).resolve().parent / "interop" / "witnesslog" / "main.go"
XMOD = Path("/usr/share/gocode/src/golang.org/x/mod/sumdb")
ORIGIN = "go.example.org/witnessed-log"
# Power-of-two and other old sizes, a tile edge, a repeat, one big jump.
SIZES = ("1", "2", "3", "4", "8", "9", "255", "256", "257", "257", "1000", "4097")


def _go_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        GO111MODULE="off",
        GOPATH=f"{tmp / 'gopath'}{os.pathsep}/usr/share/gocode",
        GOCACHE=str(tmp / "gocache"),
        GOENV="off",
        GOFLAGS="",
        GOPROXY="off",
        GOTOOLCHAIN="local",
    )
    return env


@pytest.fixture(scope="module")
def witnesslog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not (XMOD / "tlog").is_dir():
        hint = "run `sudo bash .ci/install-go-interop`"
        if os.environ.get("LEDGER_REQUIRE_INTEROP", "") not in ("", "0"):
            pytest.fail(f"LEDGER_REQUIRE_INTEROP is set but Go or x/mod is missing; {hint}")
        pytest.skip(f"Go or golang.org/x/mod is missing; {hint}")
    tmp = tmp_path_factory.mktemp("witnesslog")
    binary = tmp / "witnesslog"
    build = subprocess.run(
        [go, "build", "-o", str(binary), str(SRC)],
        env=_go_env(tmp),
        cwd=tmp,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stdout}{build.stderr}"
    return binary


def _go(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_our_witness_cosigns_what_go_tlog_proves(witnesslog: Path, tmp_path: Path) -> None:
    requests = tmp_path / "requests"
    requests.mkdir()
    made = _go(witnesslog, "requests", str(requests), ORIGIN, *SIZES)
    assert made.returncode == 0, made.stderr
    log_vkey = made.stdout.strip()
    w = WitnessProcess(tmp_path, [])
    w.policy.write_text(f"log {log_vkey}\nquorum none\n")
    w.start()
    try:
        for i, size in enumerate(SIZES):
            body = (requests / f"request-{i}").read_bytes()
            r = w.post(body)
            assert r.status == 200, (size, r.status, r.body)
            text = body.split(b"\n\n", 1)[1].split(b"\n\n", 1)[0].decode() + "\n"
            assert text.startswith(f"{ORIGIN}\n{size}\n")
            verify_cosignature(w.vkey, text, r.body.decode())
        # A Go proof replayed against the wrong old size: 409, and the size.
        assert w.post((requests / "request-5").read_bytes()).body == b"4097\n"
        served = tmp_path / "served"
        served.write_bytes(w.checkpoint(ORIGIN).body)
        name, _, b64 = w.vkey.split("+", 2)
        pub = base64.b64decode(b64)[1:]
        checked = _go(witnesslog, "cosigned", str(served), log_vkey, name, pub.hex())
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.startswith("ok ")
        # And Go rejects a served checkpoint whose cosignature is damaged.
        data = bytearray(served.read_bytes())
        data[-5] = ord("A") if data[-5] != ord("A") else ord("B")
        served.write_bytes(bytes(data))
        assert _go(witnesslog, "cosigned", str(served), log_vkey, name, pub.hex()).returncode != 0
    finally:
        w.kill()
