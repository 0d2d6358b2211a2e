"""Choosing torch's thread count from the cores other processes leave idle."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tokendice.engines import threads
from tokendice.engines.threads import CpuTimes, idle_cores, threads_for


def test_threads_follow_the_idle_cores_within_one_and_the_default(monkeypatch):
    monkeypatch.setattr(threads, "_default", 4)
    assert threads_for(None) == 4  # not measurable: torch's default
    assert threads_for(3.9) == 4 and threads_for(2.4) == 2 and threads_for(2.6) == 3
    assert threads_for(0.2) == 1  # never fewer than one
    assert threads_for(7.0) == 4  # never more than torch's default


@pytest.mark.skipif(CpuTimes.now() is None, reason="needs /proc/stat (Linux)")
def test_our_own_work_is_not_counted_against_the_idle_cores():
    start = CpuTimes.now()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # this process, busy on one core
        pass
    end = CpuTimes.now()
    machine_idle = start.cores * (1 - (end.busy - start.busy) / (end.total - start.total))
    own = (end.own_s - start.own_s) / (end.at - start.at)
    assert own > 0.3
    assert idle_cores(start, end) == pytest.approx(machine_idle + own, abs=0.25)


@pytest.mark.skipif(CpuTimes.now() is None, reason="needs /proc/stat (Linux)")
def test_a_busy_process_beside_us_takes_a_core():
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start
        beside = idle_cores(CpuTimes.now())
    finally:
        hog.kill()
        hog.wait()
    assert beside is not None
    assert beside <= CpuTimes.now().cores - 0.5
