"""Warm workers, the job's side: run a job's step in a process forked from one that has
already imported torch, MLflow and pandas (the server: reprogrid.jobs.warm_server).

A small run is a fraction of a second of compute, but a fresh Python process spends
about three seconds importing torch and MLflow. So the workflow starts one warm server
per Snakemake invocation (`onstart`), which imports all of that once and then forks a
child for every job that connects to its Unix socket. The child runs exactly what the
job would have run in its own process (`reprogrid.jobs.registry.execute`), with the job's
working directory, environment, CPU affinity, stdout and stderr; only the start-up is
skipped. Results are bit-identical either way (tested).

What makes a fork honest, checked rather than assumed:
- The server loads its native libraries with one thread each (OMP_NUM_THREADS=1 and
  kin) and starts no thread of its own: before every fork it asserts that it is one
  thread with no CUDA context, and declines the job otherwise. A child then sizes the
  OpenMP and BLAS pools to the job's own thread variables (threadpoolctl), as a fresh
  process would have at load, and the run records the pools as it finds them.
- Variables that native libraries read once, at load (OMP_SCHEDULE, KMP_*, MKL_CBWR,
  ...), cannot be changed in a child: a job whose values differ from the server's is
  declined and runs in its own process.
- MLflow telemetry is off (`reprogrid/__init__.py`), and so is arrow's allocator
  thread; the server opens a recording job's MLflow store once, before forking it,
  and closes every connection it opened before the fork.
- The job waits a bounded time for its child to start (REPROGRID_WARM_START_TIMEOUT,
  60 s), then runs in its own process; a child's CPU time and memory are written to the
  job's log, since `benchmark:` and cgroups see only the job's thin client.

Declined, unreachable, switched off (REPROGRID_WARM_WORKERS=0) or inside a cluster job:
the job runs in its own process as usual, and `reprogrid.executor` says which.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from pathlib import Path

from reprogrid.record.envvars import THREAD_COUNTS

SOCKET_ENV = "REPROGRID_WORKER_SOCKET"
SWITCH_ENV = "REPROGRID_WARM_WORKERS"  # "0" turns warm workers off
START_TIMEOUT_ENV = "REPROGRID_WARM_START_TIMEOUT"
HEADER = struct.Struct("!Q")
# The server's native libraries load single-threaded (a forked child sizes its pools);
# arrow's jemalloc (imported with MLflow) would otherwise start a background thread.
SERVER_ENV = {name: "1" for names in THREAD_COUNTS.values() for name in names} | {
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
}


def enabled() -> bool:
    """Off when switched off, and inside cluster jobs: their work belongs to the job's
    own allocation, not to a server on the submitting host."""
    return os.environ.get(SWITCH_ENV, "1") != "0" and "SLURM_JOB_ID" not in os.environ


# --- the Snakemake side -------------------------------------------------------------

# subprocess and tempfile are imported where used: the Snakemake side starts and stops the
# server once, while every job's thin client imports this module

def start():
    """Start a server for this process's jobs and point them at it (via the environment):
    its subprocess.Popen, or None."""
    import subprocess
    import tempfile

    if not enabled():
        return None
    socket_path = Path(tempfile.mkdtemp(prefix="reprogrid-")) / "worker.sock"
    command = [sys.executable, "-m", "reprogrid.jobs.warm_server", str(socket_path), str(os.getpid())]
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=os.environ | SERVER_ENV)
    # The server binds its socket before its slow imports; wait for that, so that the
    # first jobs queue up for it rather than miss it and start cold.
    deadline = time.monotonic() + 30
    while not socket_path.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            stop(server)
            return None
        time.sleep(0.01)
    os.environ[SOCKET_ENV] = str(socket_path)
    return server


def stop(server) -> None:
    import subprocess

    socket_path = os.environ.pop(SOCKET_ENV, None)
    if server is not None and server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    if socket_path:
        Path(socket_path).unlink(missing_ok=True)
        try:
            Path(socket_path).parent.rmdir()
        except OSError:
            pass


# --- the job side -------------------------------------------------------------------

def run_remote(step: str, kwargs: dict, log_path: str, run_lock: int | None = None) -> dict | None:
    """Have a warm child run the step: its outcome {"ok": ..., "error": ...}, or None when
    the step should run in this process instead (no server, or the server declined or
    did not start a child in time; the reason goes to the job's stderr). `run_lock`,
    the run's lock (reprogrid.jobs.runlock), is shared with the child: held until both end."""
    socket_path = os.environ.get(SOCKET_ENV)
    if not socket_path or not enabled():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    request = json.dumps({
        "step": step, "kwargs": kwargs, "log": log_path, "cwd": os.getcwd(), "env": dict(os.environ),
        "affinity": sorted(os.sched_getaffinity(0)),
    }).encode()
    with connection:
        try:
            connection.connect(socket_path)
            connection.sendall(HEADER.pack(len(request)) + request)
            connection.settimeout(float(os.environ.get(START_TIMEOUT_ENV, "60")))
            answer = json.loads(_receive(connection) or b"{}")
            started = {}
            if answer.get("ready"):
                # only now, to a server that answers: a descriptor sent to a stopped or dead one
                # would sit in its backlog, and the run's lock with it, past this job's end.
                # The child writes to this job's own stdout and stderr.
                socket.send_fds(connection, [b"F"], [1, 2] if run_lock is None else [1, 2, run_lock])
                started = json.loads(_receive(connection) or b"{}")
        except (OSError, ValueError) as error:  # no server, a dead or stopped one
            print(f"reprogrid: warm worker unavailable ({type(error).__name__}: {error}); "
                  "running in this process", file=sys.stderr)
            return None
        if "pid" not in started:
            print(f"reprogrid: warm worker declined: {answer.get('declined', 'no reply')}; "
                  "running in this process", file=sys.stderr)
            return None
        connection.settimeout(None)  # the step itself takes as long as it takes
        try:
            reply = _receive(connection)
        except OSError:
            reply = b""
    if not reply:
        return {"ok": False, "error": f"the warm worker's child (pid {started['pid']}) died before replying"}
    outcome = json.loads(reply)
    usage = outcome.get("usage")
    if usage:
        with open(log_path, "a", encoding="utf-8") as handle:
            handle.write(f"warm child pid {started['pid']}: {usage['user']:.2f} s user CPU, {usage['system']:.2f} s "
                         f"system CPU, max RSS {usage['max_rss_mib']:.0f} MiB\n")
    return outcome


def _receive(connection: socket.socket, size: int | None = None) -> bytes:
    if size is None:
        header = _receive(connection, HEADER.size)
        if len(header) < HEADER.size:
            return b""
        size = HEADER.unpack(header)[0]
    chunks, missing = [], size
    while missing:
        chunk = connection.recv(min(missing, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
