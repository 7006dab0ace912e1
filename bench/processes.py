"""What the benchmarks read of a server process: its CPU time with its children's."""

from __future__ import annotations

import psutil


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) of a process and all its children (workers, jobs)."""
    process = psutil.Process(pid)
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
