"""The resident memory of this process, for the tests that bound what the node holds."""
from __future__ import annotations

from pathlib import Path


def rss_mb() -> float:
    """Resident set size of this process in MiB (VmRSS of /proc/self/status; no psutil needed)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
