"""Long-running commands stop cleanly on SIGTERM (ledger.verify.cli.run_stoppable; issue 14).

``ledger mirror --watch``, ``ledger demo`` (which must stop its server) and
``ledger-verify log`` (which must stop its worker processes: a plain SIGTERM left them
running forever, orphaned).

The commands run as real background jobs of a non-interactive shell (``cmd &``), which
starts them with SIGINT ignored: that is why SIGTERM, what service managers send,
must stop them. The shell's ``wait`` reports how the job ended: 143 is "ended by
SIGTERM", the convention (and what uvicorn does for ``ledger serve``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.verify import cli as verify_cli
from tests.logfactory import LogFactory

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 60.0


class BackgroundJob:
    """``sh -c 'COMMAND & ...; wait'``: the command's pid, and the status ``wait`` saw."""

    def __init__(self, tmp_path: Path, *args: str, module: str = "cli") -> None:
        self.dir = tmp_path
        self.out, self.err = tmp_path / "job.out", tmp_path / "job.err"
        self.pid_file, self.rc_file = tmp_path / "job.pid", tmp_path / "job.rc"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env["PYTHONPATH"] = str(ROOT)
        env["LEDGER_CONFIG_DIR"] = str(tmp_path / "config")
        command = " ".join(_quote(a) for a in (sys.executable, "-m", module, *args))
        script = (
            f"{command} >{_quote(str(self.out))} 2>{_quote(str(self.err))} & "
            f"echo $! >{_quote(str(self.pid_file))}; wait $!; echo $? >{_quote(str(self.rc_file))}"
        )
        self.shell = subprocess.Popen(["/bin/sh", "-c", script], cwd=tmp_path, env=env)
        self.pid = int(_wait_for(lambda: _read(self.pid_file).strip(), "the job's pid"))

    def stdout(self) -> str:
        return _read(self.out)

    def stderr(self) -> str:
        return _read(self.err)

    def alive(self) -> bool:
        return not self.rc_file.exists()

    def status(self) -> int:
        self.shell.wait(WAIT_S)
        return int(_read(self.rc_file))

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.shell.wait(WAIT_S)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _wait_for(condition: object, what: str, timeout: float = WAIT_S) -> object:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_mirror_watch_stops_on_sigterm_in_the_background(tmp_path: Path) -> None:
    f = LogFactory(seed="signals")
    f.grow(50)
    src = f.write(tmp_path / "src")
    mirror = tmp_path / "mirror"
    job = BackgroundJob(
        tmp_path, "mirror", str(src), str(mirror), "--log-key", f.log_key.vkey,
        "--watch", "0.2", "--no-site", "--jobs", "1",
    )  # fmt: skip
    try:
        _wait_for(lambda: "size 50" in job.stdout(), "the first sync")
        # A background job ignores SIGINT (the shell asked for that): it keeps running.
        os.kill(job.pid, signal.SIGINT)
        time.sleep(0.5)
        assert job.alive()
        started = time.monotonic()
        os.kill(job.pid, signal.SIGTERM)
        assert job.status() == 128 + signal.SIGTERM
        assert time.monotonic() - started < 5
    finally:
        job.kill()
    assert "ledger mirror: interrupted" in job.stderr()
    assert "Traceback" not in job.stderr()
    # What it left is a servable copy of the log.
    assert verify_cli.main(["log", str(mirror), "--log-key", f.log_key.vkey, "-q"]) == 0


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_demo_stops_its_server_on_sigterm(tmp_path: Path) -> None:
    job = BackgroundJob(tmp_path, "demo", "--data-dir", "demo", "--states", "2")
    try:
        server = int(
            _wait_for(
                lambda: "2/7" in job.stderr() and _children(job.pid) and _children(job.pid)[0],
                "the demo's server",
            )  # type: ignore[arg-type]
        )
        os.kill(job.pid, signal.SIGTERM)
        assert job.status() == 128 + signal.SIGTERM
        assert _wait_for(lambda: _gone(server), "the demo's server to stop", timeout=20)
    finally:
        job.kill()
    err = job.stderr()
    assert "ledger: error: stopped by SIGTERM" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_verify_stops_its_workers_on_sigterm(tmp_path: Path) -> None:
    f = LogFactory(seed="big")
    f.grow(20_000)  # about 4 s to verify with 2 workers here: time to stop it halfway
    log = f.write(tmp_path / "log")
    job = BackgroundJob(
        tmp_path, "log", str(log), "--log-key", f.log_key.vkey, "--jobs", "2",
        module="ledger.verify.cli",
    )  # fmt: skip
    workers: list[int] = []
    try:
        found = _wait_for(lambda: len(_children(job.pid)) >= 2 and _children(job.pid), "workers")
        assert isinstance(found, list)
        workers.extend(found)
        time.sleep(0.3)
        assert job.alive(), "verified before it could be stopped"
        os.kill(job.pid, signal.SIGTERM)
        assert job.status() == 128 + signal.SIGTERM
        for pid in workers:
            assert _wait_for(lambda pid=pid: _gone(pid), f"worker {pid} to stop", timeout=20)
    finally:
        job.kill()
        for pid in workers:  # orphans, if the test failed
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
    assert "ledger-verify: stopped by SIGTERM" in job.stderr()
    assert "Traceback" not in job.stderr() and "VALID" not in job.stdout()
