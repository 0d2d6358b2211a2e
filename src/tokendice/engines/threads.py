"""How many CPU threads an engine uses, and why that number is part of a run's settings.

torch splits matrix products across its threads; where the split changes how sums are
rounded, the same seed gives different samples with another thread count. On this
project's 2-core CPU it does not (measured on the embedded model: the logits were
bitwise equal with 1 and 2 threads, and 1,000 samples identical; README, "What makes
samples repeat"), but other CPUs and BLAS builds split differently. So the thread
count is a setting like the dtype: the default is fixed for a machine (torch's
default, its physical cores, never the load of the moment), every run records it,
and `resume` and `audit` reuse it.

The default is also the fastest on an idle machine, and slow on a busy one: torch's
threads meet at the end of every parallel operation, so when another process holds
a core, a forward pass runs at the pace of the thread that is not scheduled
(decoding 256 samples on 2 cores beside one busy process: 32.6 s with 2 threads,
19.6 s with 1). `busy_note` says so, with what to do, when the machine is busy.
"""

from __future__ import annotations

import os

_default = 0


def default_threads() -> int:
    """torch's thread count before tokendice first changed it (its default: the physical cores)."""
    global _default
    if not _default:
        import torch

        _default = torch.get_num_threads()
    return _default


def busy_note(threads: int) -> str | None:
    """A note when other processes keep the cores busy enough to slow `threads` threads, else None."""
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return None
    if threads <= 1 or load < cores - 0.5:
        return None
    return (
        f"this machine is busy (load {load:.1f} on {cores} cores): {threads} threads will be slow; "
        "threads=1 is faster here, but samples made with another thread count can differ"
    )
