"""One invocation per working directory, and surviving a killed one.

Snakemake locks a working directory, but only once it has built its DAG, and a killed
Snakemake (SIGKILL, the OOM killer, power loss) leaves its lock behind, so the next
`snakemake --rerun-incomplete` refuses to start until someone runs `--unlock`.

reprogrid's own claim closes both gaps. The Snakemake process takes an exclusive
`flock` on `.snakemake/reprogrid/invocation.lock` while it parses the Snakefile, before
any work, and holds it for the rest of its life; the kernel drops it when that process
exits, however it exits. So:
- a second invocation in the same directory, however soon after the first it starts,
  cannot take it and is refused at once, naming the holder;
- a Snakemake lock found by an invocation that does hold the claim was left by a
  process that no longer exists, and is removed.
Jobs that a killed Snakemake left running are not covered by this claim: each holds
its run's own lock (reprogrid.jobs.runlock), which later attempts wait for.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

CLAIM = Path(".snakemake") / "reprogrid" / "invocation.lock"
SNAKEMAKE_LOCKS = Path(".snakemake") / "locks"
_held: list[int] = []  # the claim's descriptor, open for the life of the process


# Snakemake options with which an invocation only looks (plans, lists, draws, lints,
# unlocks): it claims nothing.
LOOKING = {"-n", "--dry-run", "--dryrun", "--unlock", "--lint", "--summary", "-S", "--detailed-summary", "-D",
           "--dag", "--rulegraph", "--filegraph", "--list-rules", "--list", "-l", "--report"}


def works(argv: list[str]) -> bool:
    """Whether a Snakemake command line may run jobs (and so must claim the directory)."""
    return not LOOKING & set(argv)


class AlreadyRunning(RuntimeError):
    """Another invocation is working in this directory."""


def claim() -> str | None:
    """Claim this working directory for this process, or raise AlreadyRunning. Returns
    what was done about a lock a killed invocation left, or None."""
    if _held:
        return None
    CLAIM.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(CLAIM, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
        os.close(fd)
        raise AlreadyRunning(
            f"another snakemake (pid {holder or 'unknown'}) is running in {Path.cwd()}; wait for it to finish "
            "or stop it, then rerun"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held.append(fd)
    stale = sorted(SNAKEMAKE_LOCKS.glob("*.lock")) if SNAKEMAKE_LOCKS.is_dir() else []
    for lock in stale:
        lock.unlink(missing_ok=True)
    if stale:
        return "removed the lock left by a snakemake that was killed (no invocation holds this directory)"
    return None
