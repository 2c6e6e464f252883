"""Warm workers: run a job's step in a process forked from one that has already
imported torch, MLflow and pandas.

A small run is a fraction of a second of compute, but a fresh Python process spends
about three seconds importing torch and MLflow and opening the tracking store. So the
workflow starts one warm server per Snakemake invocation (`onstart`), which imports all
of that once and then forks a child for every job that connects to its Unix socket.
The child runs exactly what the job would have run in its own process
(`reprogrid.step.execute`), with the job's working directory, environment, stdout and
stderr; only the start-up is skipped. Results are bit-identical either way (tested).

Scheduling stays Snakemake's: a job is still one Snakemake job with its threads and
resources; it just waits on its child. If the job's process dies, the child notices
the closed socket and exits. The server exits with the Snakemake process that started
it. No server (disabled, a cluster job, any failure to connect): the job runs in its
own process as usual.
"""

from __future__ import annotations

import gc
import json
import os
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

SOCKET_ENV = "REPROGRID_WORKER_SOCKET"
SWITCH_ENV = "REPROGRID_WARM_WORKERS"  # "0" turns warm workers off
HEADER = struct.Struct("!Q")


def enabled() -> bool:
    """Off when switched off, and inside cluster jobs: their work belongs to the job's
    own allocation, not to a server on the submitting host."""
    return os.environ.get(SWITCH_ENV, "1") != "0" and "SLURM_JOB_ID" not in os.environ


# --- the Snakemake side -------------------------------------------------------------

def start(tracking_uri: str | None = None) -> subprocess.Popen | None:
    """Start a server for this process's jobs and point them at it (via the environment)."""
    if not enabled():
        return None
    socket_path = Path(tempfile.mkdtemp(prefix="reprogrid-")) / "worker.sock"
    command = [sys.executable, "-m", "reprogrid.warm", str(socket_path), str(os.getpid())]
    if tracking_uri:
        command.append(tracking_uri)
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)
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

def run_remote(step: str, kwargs: dict, log_path: str) -> dict | None:
    """Have a warm child run the step; None when no server can be reached."""
    socket_path = os.environ.get(SOCKET_ENV)
    if not socket_path or not enabled():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(socket_path)
    except OSError:
        connection.close()
        return None
    request = json.dumps({
        "step": step, "kwargs": kwargs, "log": log_path,
        "cwd": os.getcwd(), "env": dict(os.environ),
    }).encode()
    with connection:
        # the child writes to this job's own stdout and stderr
        socket.send_fds(connection, [HEADER.pack(len(request))], [1, 2])
        connection.sendall(request)
        reply = _receive(connection)
    return json.loads(reply) if reply else {"ok": False, "error": "the warm worker died before replying"}


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
# needs them: the `tracking` job needs only MLflow; training needs torch (and
# torch._dynamo, which every optimizer imports on creation: a second on its own); only
# `compare` needs pandas and matplotlib. A job's child is forked as soon as the stages
# its step needs are loaded; the server loads the next stage whenever it is idle.
STAGES = {
    "mlflow": ("mlflow", "mlflow.data", "mlflow.store.tracking.sqlalchemy_store", "reprogrid.tracking"),
    "torch": ("torch", "torch._dynamo", "torch._inductor", "reprogrid.pipeline", "reprogrid.train",
              "reprogrid.evaluate", "reprogrid.env"),
    "analysis": ("pandas", "matplotlib.pyplot", "reprogrid.compare", "reprogrid.report"),
}
NEEDS = {
    "preflight": {"torch"},
    "tracking": {"mlflow"},
    "train": {"mlflow", "torch"},
    "evaluate": {"mlflow", "torch"},
    "compare": {"mlflow", "analysis"},
    "audit": {"mlflow"},
}


class _Job:
    def __init__(self, connection: socket.socket, fds: list[int], request: dict):
        self.connection, self.fds, self.request = connection, fds, request

    def close(self) -> None:
        self.connection.close()
        for fd in self.fds:
            os.close(fd)


def serve(socket_path: str, parent_pid: int, tracking_uri: str | None) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)  # bound before any import: early jobs wait, not go cold
    listener.listen(128)
    # nothing to flush or clean up: skip tearing down torch and MLflow (a second)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    to_load, loaded, waiting = list(STAGES), set(), []
    while os.getppid() == parent_pid:
        _reap_children()
        readable, _, _ = select.select([listener], [], [], 0 if to_load else 1.0)
        if readable:
            job = _accept(listener)
            if job is not None:
                waiting.append(job)
        for job in [j for j in waiting if NEEDS.get(j.request["step"], set(STAGES)) <= loaded]:
            waiting.remove(job)
            if os.fork() == 0:
                listener.close()
                for other in waiting:
                    other.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _run_child(job)  # never returns
            job.close()
        if to_load and not readable:
            stage = to_load.pop(0)
            _load(stage, tracking_uri)
            loaded.add(stage)


def _accept(listener: socket.socket) -> _Job | None:
    connection, _ = listener.accept()
    connection.settimeout(30)  # a client sends its request at once; never hang on one
    try:
        header, fds, _, _ = socket.recv_fds(connection, HEADER.size, 2)
        request = json.loads(_receive(connection, HEADER.unpack(header)[0]))
        connection.settimeout(None)
        return _Job(connection, list(fds), request)
    except (OSError, ValueError, struct.error):
        connection.close()
        return None


def _load(stage: str, tracking_uri: str | None) -> None:
    import importlib

    if stage == "analysis":
        import matplotlib

        matplotlib.use("Agg")
    for module in STAGES[stage]:
        importlib.import_module(module)
    if stage == "mlflow" and tracking_uri:
        from reprogrid.tracking import open_store_for_children

        try:
            open_store_for_children(tracking_uri)
        except Exception:  # noqa: BLE001 - the job itself will meet (and report) the problem
            traceback.print_exc()
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
        request = job.request
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _exit_when_client_goes(job.connection)
        from reprogrid.step import execute

        try:
            execute(request["step"], request["kwargs"], request["log"])
            reply = {"ok": True}
        except BaseException:  # noqa: BLE001 - whatever ends the step goes back to its job
            reply = {"ok": False, "error": traceback.format_exc()}
        sys.stdout.flush()
        sys.stderr.flush()
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
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
