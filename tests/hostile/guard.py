"""A guard around one verification of a hostile input: no outbound connection, no file
opened, no hang.

One audit hook (PEP 578) is added per process, the first time :func:`run_guarded` runs;
hooks cannot be removed, so it is armed per call through a context variable that only
the guarded worker thread sets. While armed, a forbidden event is recorded and refused
(the hook raises, so the connection or open never happens); the call then fails even if
the code under test swallowed the refusal. The worker thread doubles as a hang detector:
a call that has not returned after ``timeout`` seconds fails (a generous bound, not a
performance assertion; the thread is left behind as a daemon).

Nothing is allowed by exception. The database connections a verification uses must be
open before it starts (the pools keep them): a new SQLite connection is a file open
(``sqlite3.connect``), and any Python-level ``open`` counts, whatever the path.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT: Final = 10.0

# PEP 578 events that reach outside the process: network, files, other programs.
FORBIDDEN_EVENTS: Final = frozenset(
    {
        "open",  # builtins.open, io.open, os.open, io.open_code
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.sendto",
        "socket.bind",
        "http.client.connect",
        "urllib.Request",
        "sqlite3.connect",
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.listdir",
        "os.scandir",
        "shutil.copyfile",
    }
)

_armed: ContextVar[list[str] | None] = ContextVar("hostile_guard_armed", default=None)
_installed = False
_install_lock = threading.Lock()


class GuardTripped(AssertionError):
    """The guarded call did something a hostile input must never cause."""


class Hang(AssertionError):
    """The guarded call did not return in time."""


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in FORBIDDEN_EVENTS:
        return
    seen = _armed.get()
    if seen is None:
        return
    seen.append(f"{event}{args!r:.200}")
    raise PermissionError(f"hostile-input guard: {event} refused")


def install() -> None:
    """Add the audit hook to this process (once)."""
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


def run_guarded(call: Callable[[], T], *, timeout: float = DEFAULT_TIMEOUT) -> T:
    """Run ``call`` in a worker thread with the guard armed in that thread only.

    Raises:
        GuardTripped: ``call`` opened a file, connected, resolved a name or spawned a process.
        Hang: ``call`` had not returned after ``timeout`` seconds.
        BaseException: whatever ``call`` raised, when the guard did not trip.
    """
    install()
    seen: list[str] = []
    outcome: dict[str, Any] = {}

    def worker() -> None:
        # A new thread starts with an empty context: arming it arms nothing else.
        _armed.set(seen)
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed back to the caller below
            outcome["error"] = error
        finally:
            _armed.set(None)

    thread = threading.Thread(target=worker, name="hostile-guarded", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise Hang(f"the call did not return within {timeout} s")
    if seen:
        raise GuardTripped("forbidden while verifying a hostile input: " + "; ".join(seen))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]
