"""Which process is writing a run, and whether it is still alive.

A run is 'running' while a process writes it. A process killed with SIGKILL cannot
say that it stopped, so every run records its writer (host, pid, and the pid's start
time, which tells a reused pid from the original); a 'running' run whose writer on
this host is gone is shown, and stored, as 'interrupted'.
"""

from __future__ import annotations

import os
import socket


def this_host() -> str:
    return socket.gethostname()


def start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # field 22; the command name (field 2) may hold spaces and parentheses, so count from its end
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def alive(pid: int, started: str | None) -> bool:
    """Whether process `pid` on this host is the one that started at `started`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    if started is None:
        return True
    now = start_time(pid)
    return now is None or now == started


def writer() -> tuple[str, int, str | None]:
    """(host, pid, start time) of this process."""
    pid = os.getpid()
    return this_host(), pid, start_time(pid)
