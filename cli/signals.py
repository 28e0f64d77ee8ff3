"""SIGTERM stops every ``ledger`` command as Ctrl-C (SIGINT) does.

Service managers (systemd, Docker, Kubernetes, supervisord) stop a process with
SIGTERM, and a shell starts its background jobs with SIGINT ignored, so Ctrl-C alone
does not stop ``ledger mirror --watch`` in a script. While a command runs
(:func:`run_stoppable`, called by the console script), SIGTERM raises
:class:`Terminated`, a :class:`KeyboardInterrupt`, in the main thread: the command
stops exactly as on Ctrl-C. Its ``finally`` blocks run (``ledger demo`` stops its
server, a mirror keeps the consistent copy it always has, since it publishes the
checkpoint last), and it prints its one line. A second SIGTERM during that cleanup
is not raised again, so that the cleanup finishes (SIGKILL remains for a hung one).

Then, as the Unix convention for a process stopped by a signal asks (and as uvicorn
does for ``ledger serve``), the process ends *by* that signal, its default action
restored: a shell sees status 143 (128 + 15), and systemd counts it as a clean stop.

SIGINT keeps Python's behaviour (KeyboardInterrupt, exit 130). A process started
with SIGINT ignored, as a background job is, keeps ignoring it: the shell asked for
that; use SIGTERM (``kill PID``) to stop it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

#: The signals that stop a command as Ctrl-C does.
STOP_SIGNALS = (signal.SIGTERM,)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when a stop signal arrives."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_stoppable(run: Callable[[], int]) -> int:
    """``run()`` with SIGTERM raising :class:`Terminated`; return its exit code.

    If a stop signal arrived, the process then ends by that signal (this function
    does not return). Outside the main thread, ``run()`` runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        return run()
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        code = run()
    except Terminated:  # raised outside the command's own handling (before or after it)
        code = 128 + received[0]
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if received:
        _end_by(received[0])
    return code


def _end_by(signum: int) -> None:
    """End the process by ``signum`` with its default action (no return)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    signal.raise_signal(signum)
    raise SystemExit(128 + signum)  # pragma: no cover - the signal ended the process


__all__ = ["STOP_SIGNALS", "Terminated", "run_stoppable"]
