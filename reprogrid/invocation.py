"""Surviving a killed Snakemake: its lock is released when its process is gone.

Snakemake locks a working directory and, when killed (SIGKILL, power loss), leaves the
lock behind; the next `snakemake --rerun-incomplete` then refuses to start until someone
runs `--unlock`. reprogrid records which process holds the lock (onstart) and, at the
next invocation, removes the lock only when that process no longer exists on this host.
A lock held by a live process, by another host, or by an unknown one is left alone.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

RECORD = Path(".snakemake") / "reprogrid-invocation.json"
LOCKS = Path(".snakemake") / "locks"


def record_holder() -> None:
    """Say that this process (Snakemake, which now holds the lock) is running here."""
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def release_stale_lock() -> str | None:
    """Remove the lock a killed invocation left; return what was done, or None."""
    locks = sorted(LOCKS.glob("*.lock")) if LOCKS.is_dir() else []
    if not locks or not RECORD.is_file():
        return None
    try:
        holder = json.loads(RECORD.read_text())
        pid, host = int(holder["pid"]), holder["host"]
    except (ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname() or pid == os.getpid() or _alive(pid):
        return None
    for lock in locks:
        lock.unlink(missing_ok=True)
    RECORD.unlink(missing_ok=True)
    return f"removed the lock left by a killed snakemake (pid {pid}, no longer running)"
