"""Running one benchmark side in a child process: wall and CPU seconds and the peak memory of its whole
process tree (a JVM the child starts included), sampled while it runs.

Kept apart from ``_common`` (which imports the HTTP client and delta-rs) so a timed child imports nothing
it does not need.
"""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    cpu: float
    """User + system CPU seconds of the child and what it waited for."""
    peak: int
    """Peak RSS in bytes of the child's process tree."""
    stopped: bool
    """Killed for passing ``max_rss``: the figures are then lower bounds."""
    stdout: str
    """What the child printed, when captured (else it went to this process's stderr)."""


def tree_rss(proc: psutil.Process) -> int:
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # the child has just exited
        return 0
    total = 0
    for p in tree:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_child(
    args: list[str], *, max_rss: int | None = None, capture: bool = False, interval_s: float = 0.02
) -> ChildRun:
    """Run ``args``, sampling its tree's RSS every ``interval_s``; a failed child ends the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE if capture else sys.stderr, text=True)
    proc = psutil.Process(child.pid)
    peak = 0
    stopped = False
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, stopped
        while not done.is_set():
            peak = max(peak, tree_rss(proc))
            if max_rss and peak > max_rss:
                stopped = True
                child.kill()
                return
            time.sleep(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = child.communicate()
    seconds = time.perf_counter() - started
    done.set()
    thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if child.returncode and not stopped:
        raise SystemExit(f"child {args} failed with status {child.returncode}")
    return ChildRun(seconds, cpu, peak, stopped, out or "")
