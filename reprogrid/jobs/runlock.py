"""One attempt at a run at a time: a per-key lock held by the process doing the work.

When Snakemake alone is killed (the OOM killer, `kill -9`), its jobs live on; the next
invocation must not train or record the same key beside them, nor let them overwrite
its results afterwards. Every seed, train and evaluate job therefore holds an exclusive
`flock` on its run key's lock file for as long as it works (the warm child that does
the work shares it, see reprogrid.jobs.warm_client). The kernel releases it when the last process
holding it exits, however it exits, so the lock cannot outlive its holder and cannot
be released while the holder lives. A later attempt waits for it (bounded:
REPROGRID_RUN_LOCK_TIMEOUT seconds), then refuses, naming the process that holds it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

LOCK_DIR = Path(".snakemake") / "reprogrid" / "runs"
TIMEOUT_ENV = "REPROGRID_RUN_LOCK_TIMEOUT"
DEFAULT_TIMEOUT_S = 3600.0
POLL_S = 0.1


class RunLocked(RuntimeError):
    """An earlier attempt at the same run is still working."""


def lock_path(run_key: str) -> Path:
    return LOCK_DIR / f"{run_key}.lock"


def acquire(run_key: str, timeout: float | None = None) -> int:
    """Hold the run's lock; return its file descriptor (the lock lasts while any copy of
    it is open). Waits for an earlier holder, up to `timeout` seconds."""
    if timeout is None:
        timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    path = lock_path(run_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline, told = time.monotonic() + timeout, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(fd)
            if time.monotonic() >= deadline:
                os.close(fd)
                raise RunLocked(
                    f"run {run_key} is still being worked on by an earlier attempt ({holder}) after waiting "
                    f"{timeout:.0f} s; let it finish or stop it, then rerun ({TIMEOUT_ENV} sets the wait)"
                ) from None
            if not told:
                print(f"reprogrid: waiting for an earlier attempt at run {run_key} ({holder}) to finish",
                      file=sys.stderr, flush=True)
                told = True
            time.sleep(POLL_S)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it (informative only: the lock itself is
    the kernel's)."""
    text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "another process"
