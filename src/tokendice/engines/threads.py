"""How many torch threads an engine uses: unless told, the cores other processes leave idle.

torch's threads meet at the end of every parallel operation, so when another
process holds one of the cores, a forward pass runs at the pace of the thread
that is not scheduled. Measured on the embedded model, 2 cores, decoding 256
samples of the notebook's request: 13.4 s with 2 threads and 20.3 s with 1 on the
idle machine, but 32.6 s with 2 and 19.6 s with 1 beside one busy-looping
process (8 samples: 2.1 s either way idle, 7.7 s against 2.2 s beside it). So an
engine counts the cores that stay idle while it loads its model, and uses that
many threads, never more than torch's default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

MIN_WINDOW_S = 0.25  # shorter than this, /proc/stat's 10 ms ticks say little

_default = 0


def default_threads() -> int:
    """torch's thread count before tokendice first changed it (its default: the physical cores)."""
    global _default
    if not _default:
        import torch

        _default = torch.get_num_threads()
    return _default


@dataclass(frozen=True)
class CpuTimes:
    """Busy and total CPU ticks of the whole machine, this process's CPU seconds, and when."""

    busy: int
    total: int
    cores: int
    own_s: float
    at: float

    @classmethod
    def now(cls) -> CpuTimes | None:
        """Read /proc/stat; None where there is none (not Linux)."""
        try:
            with open("/proc/stat") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        fields = lines[0].split() if lines else []
        if not fields or fields[0] != "cpu":
            return None
        ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        return cls(sum(ticks) - idle, sum(ticks), max(cores, 1), time.process_time(), time.monotonic())


def idle_cores(since: CpuTimes | None, now: CpuTimes | None = None) -> float | None:
    """Cores that processes other than this one left idle from `since` to `now` (by default:
    now, at least MIN_WINDOW_S after `since`); None where it cannot be measured."""
    if since is None:
        return None
    if now is None:
        time.sleep(max(0.0, MIN_WINDOW_S - (time.monotonic() - since.at)))
        now = CpuTimes.now()
    if now is None or now.total <= since.total:
        return None
    busy_cores = (now.busy - since.busy) / (now.total - since.total) * since.cores
    own_cores = (now.own_s - since.own_s) / (now.at - since.at)
    return since.cores - max(0.0, busy_cores - own_cores)


def threads_for(idle: float | None) -> int:
    """The idle cores, rounded, at least 1 and at most torch's default."""
    if idle is None:
        return default_threads()
    return max(1, min(default_threads(), int(idle + 0.5)))
