"""Warm workers: run a job's step in a process forked from one that has already
imported torch, MLflow and pandas.

A small run is a fraction of a second of compute, but a fresh Python process spends
about three seconds importing torch and MLflow. So the workflow starts one warm server
per Snakemake invocation (`onstart`), which imports all of that once and then forks a
child for every job that connects to its Unix socket. The child runs exactly what the
job would have run in its own process (`reprogrid.steps.execute`), with the job's
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
  thread; no store connection is opened before a fork.
- The job waits a bounded time for its child to start (REPROGRID_WARM_START_TIMEOUT,
  60 s), then runs in its own process; a child's CPU time and memory are written to the
  job's log, since `benchmark:` and cgroups see only the job's thin client.

Declined, unreachable, switched off (REPROGRID_WARM_WORKERS=0) or inside a cluster job:
the job runs in its own process as usual, and `reprogrid.executor` says which.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from reprogrid import provenance  # noqa: F401 - first: what its children run is stamped as the server starts
from reprogrid.envvars import THREAD_COUNTS, load_time_env_vars, size_thread_pools
from reprogrid.steps import STEPS

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

def start() -> subprocess.Popen | None:
    """Start a server for this process's jobs and point them at it (via the environment)."""
    if not enabled():
        return None
    socket_path = Path(tempfile.mkdtemp(prefix="reprogrid-")) / "worker.sock"
    command = [sys.executable, "-m", "reprogrid.warm", str(socket_path), str(os.getpid())]
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


def stop(server: subprocess.Popen | None) -> None:
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
    the run's lock (reprogrid.runlock), is shared with the child: held until both end."""
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


# --- the server ---------------------------------------------------------------------

# What jobs would otherwise import themselves, in stages, in the order the workflow
# needs them: training needs torch (and torch._dynamo, which every optimizer imports on
# creation: a second on its own) and no MLflow; evaluating records in MLflow; only
# `compare` needs pandas and matplotlib. A job's child is forked as soon as the stages
# its step needs (reprogrid.steps.STEPS) are loaded; the server loads the next stage
# whenever it is idle.
STAGES = {
    "torch": ("torch", "torch._dynamo", "torch._inductor", "torch.utils.serialization", "threadpoolctl",
              "reprogrid.train", "reprogrid.evaluate", "reprogrid.env", "reprogrid.user", "reprogrid.steps.seed",
              "reprogrid.steps.train", "reprogrid.steps.preflight"),
    "mlflow": ("mlflow", "mlflow.data", "mlflow.store.tracking.sqlalchemy_store", "reprogrid.tracking",
               # what creating a SQLite store and recording a run import on first use
               "mlflow.store.tracking.sqlalchemy_workspace_store", "sqlalchemy.dialects.sqlite",
               "alembic.command", "alembic.config", "reprogrid.steps.setup", "reprogrid.steps.evaluate",
               "reprogrid.steps.record"),
    "analysis": ("pandas", "matplotlib.pyplot", "reprogrid.compare", "reprogrid.report", "reprogrid.steps.compare"),
}


class _Job:
    def __init__(self, connection: socket.socket, fds: list[int], request: dict):
        self.connection, self.fds, self.request = connection, fds, request

    def close(self) -> None:
        self.connection.close()
        for fd in self.fds:
            os.close(fd)


def serve(socket_path: str, parent_pid: int) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)  # bound before any import: early jobs wait, not go cold
    listener.listen(128)
    # nothing to flush or clean up: skip tearing down torch and MLflow (a second)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    load_time_env = load_time_env_vars()
    to_load, loaded, waiting = list(STAGES), set(), []
    while os.getppid() == parent_pid:
        _reap_children()
        readable, _, _ = select.select([listener], [], [], 0 if to_load else 1.0)
        if readable:
            job = _accept(listener)
            if job is not None:
                waiting.append(job)
        for job in [j for j in waiting if STEPS[j.request["step"]].needs <= loaded]:
            waiting.remove(job)
            reason = fork_hazard() or env_mismatch(load_time_env, load_time_env_vars(job.request["env"]))
            if reason:
                _send(job.connection, {"declined": reason})
            elif _receive_fds(job) and os.fork() == 0:
                listener.close()
                for other in waiting:
                    other.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _run_child(job)  # never returns
            job.close()
        if to_load and not readable:
            stage = to_load.pop(0)
            _load(stage)
            loaded.add(stage)


def fork_hazard() -> str | None:
    """Why forking now would hand a child something a fresh process would not have:
    a second thread (its locks and state are copied half-way), or a CUDA context
    (unusable after fork). None when the fork is safe."""
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else threading.active_count()
    if threads != 1:
        return f"the warm server runs {threads} threads; forking it is not safe"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "the warm server has started CUDA; a forked child could not use it"
    return None


def env_mismatch(server: dict, job: dict) -> str | None:
    """Variables that native libraries read once, at load, set differently for the job."""
    differing = sorted(name for name in set(server) | set(job) if server.get(name) != job.get(name))
    if differing:
        return (f"the job sets {', '.join(differing)} differently from the warm server, and native libraries "
                "read them only when they load")
    return None


def _send(connection: socket.socket, message: dict) -> None:
    payload = json.dumps(message).encode()
    try:
        connection.sendall(HEADER.pack(len(payload)) + payload)
    except OSError:
        pass  # the job has gone; nothing to tell it


def _accept(listener: socket.socket) -> _Job | None:
    connection, _ = listener.accept()
    connection.settimeout(30)  # a client sends its request at once; never hang on one
    try:
        request = json.loads(_receive(connection))
        connection.settimeout(None)
        if request.get("step") not in STEPS:
            raise ValueError(f"unknown step {request.get('step')!r}")
        return _Job(connection, [], request)
    except (OSError, ValueError, struct.error):
        connection.close()
        return None


def _receive_fds(job: _Job) -> bool:
    """Say the server is ready, and take the job's descriptors (its stdout, stderr and run
    lock); False when the job has gone meanwhile."""
    _send(job.connection, {"ready": True})
    job.connection.settimeout(10)  # a live job answers at once
    try:
        _, fds, _, _ = socket.recv_fds(job.connection, 1, 3)
    except OSError:
        fds = []
    job.connection.settimeout(None)
    job.fds = list(fds)
    return len(job.fds) >= 2


def _load(stage: str) -> None:
    import importlib

    if stage == "analysis":
        import matplotlib

        matplotlib.use("Agg")
    for module in STAGES[stage]:
        importlib.import_module(module)
    # Keep the collector off the preloaded objects: a collection in a child would write
    # to every one of them and copy hundreds of MB of shared pages (~0.3 s per job).
    gc.freeze()


def _reap_children() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _run_child(job: _Job) -> None:
    status = 1
    try:
        for fd, target in zip(job.fds, (1, 2)):
            os.dup2(fd, target)
            os.close(fd)
        # job.fds[2], the run's lock if it came, stays open: held until this child exits
        request = job.request
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["REPROGRID_EXECUTOR"] = "warm"
        os.sched_setaffinity(0, request["affinity"])
        _send(job.connection, {"pid": os.getpid()})
        _exit_when_client_goes(job.connection)
        size_thread_pools()  # as the job's own variables would have sized them
        from reprogrid.steps import execute

        try:
            execute(request["step"], request["kwargs"], request["log"])
            reply = {"ok": True}
        except BaseException:  # noqa: BLE001 - whatever ends the step goes back to its job
            reply = {"ok": False, "error": traceback.format_exc()}
        sys.stdout.flush()
        sys.stderr.flush()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        reply["usage"] = {"user": usage.ru_utime, "system": usage.ru_stime, "max_rss_mib": usage.ru_maxrss / 1024}
        payload = json.dumps(reply).encode()
        job.connection.sendall(HEADER.pack(len(payload)) + payload)
        status = 0
    finally:
        os._exit(status)


def _exit_when_client_goes(connection: socket.socket) -> None:
    """The job's process owns this work: if it dies (killed, cancelled), so does the child."""
    def watch():
        try:
            connection.recv(1)
        finally:
            os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
