"""The warm server: imports torch, MLflow and pandas once per Snakemake invocation, then
forks a child for every job that connects (the job's side and why a fork is honest:
reprogrid.jobs.warm_client). Started as `python -m reprogrid.jobs.warm_server SOCKET PID`."""

from __future__ import annotations

import gc
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
import traceback

from reprogrid.jobs.registry import STEPS
from reprogrid.jobs.warm_client import HEADER, _receive
from reprogrid.record import provenance  # first: what its children run is stamped as the server starts
from reprogrid.record.envvars import load_time_env_vars, size_thread_pools

# What jobs would otherwise import themselves, in stages, in the order the workflow
# needs them: training needs torch (and torch._dynamo, which every optimizer imports on
# creation: a second on its own) and no MLflow; evaluating records in MLflow; only
# `compare` needs pandas and matplotlib. A job's child is forked as soon as the stages
# its step needs (reprogrid.jobs.registry.STEPS) are loaded; the server loads the next stage
# whenever it is idle.
STAGES = {
    "torch": ("torch", "torch._dynamo", "torch._inductor", "torch.utils.serialization", "threadpoolctl",
              "reprogrid.training.loop", "reprogrid.evaluation.evaluator", "reprogrid.record.environment",
              "reprogrid.inputs.usercode", "reprogrid.steps.seed", "reprogrid.training.train_run",
              "reprogrid.steps.preflight"),
    "mlflow": ("mlflow", "mlflow.data", "mlflow.store.tracking.sqlalchemy_store", "reprogrid.record.mlflow_store",
               # what creating a SQLite store and recording a run import on first use
               "mlflow.store.tracking.sqlalchemy_workspace_store", "sqlalchemy.dialects.sqlite",
               "alembic.command", "alembic.config", "reprogrid.steps.setup", "reprogrid.evaluation.evaluate_run",
               "reprogrid.evaluation.record_run"),
    "analysis": ("pandas", "matplotlib.pyplot", "reprogrid.analysis.comparison", "reprogrid.report.render",
                 "reprogrid.steps.compare"),
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
    # bound and listening before any import, so early jobs wait rather than go cold; the
    # path appears (renamed into place) only once it listens: a job that found it bound but
    # not yet listening had its connection refused and ran cold (seen once in CI)
    listener.bind(f"{socket_path}.binding")
    listener.listen(128)
    os.rename(f"{socket_path}.binding", socket_path)
    # nothing to flush or clean up: skip tearing down torch and MLflow (a second)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    load_time_env = load_time_env_vars()
    to_load, loaded, waiting, stores = list(STAGES), set(), [], set()
    while os.getppid() == parent_pid:
        _reap_children()
        readable, _, _ = select.select([listener], [], [], 0 if to_load else 1.0)
        if readable:
            job = _accept(listener)
            if job is not None:
                waiting.append(job)
        for job in [j for j in waiting if STEPS[j.request["step"]].needs <= loaded]:
            waiting.remove(job)
            _open_store(job.request, stores)
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


def _open_store(request: dict, opened: set) -> None:
    """Before the first job that records in an MLflow store forks: open that store here,
    once, for every later child to inherit (reprogrid.record.mlflow_runs.open_before_fork).
    Only for jobs in the server's own directory: the store's URI may be relative to it.
    A failure here is left for the job to meet and report."""
    tracking_path = request["kwargs"].get("tracking_path")
    if "mlflow" not in STEPS[request["step"]].needs or not isinstance(tracking_path, str) \
            or request["cwd"] != os.getcwd():
        return
    try:
        with open(tracking_path) as file:
            tracked = json.load(file)
        store = (tracked["tracking_uri"], tracked["experiment_id"])
        if store not in opened:
            opened.add(store)
            from reprogrid.record.mlflow_runs import open_before_fork

            open_before_fork(*store)
            gc.freeze()  # as after the imports: children leave these objects' pages shared
    except Exception:  # noqa: BLE001 - the job opens the store itself, and says what is wrong
        pass


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
    if stage == "torch":
        _compute_shared()
    # Keep the collector off the preloaded objects: a collection in a child would write
    # to every one of them and copy hundreds of MB of shared pages on every job.
    gc.freeze()


def _compute_shared() -> None:
    """What every run's jobs would otherwise compute for themselves, once, before the
    forks: the code hash's closure and file digests (so that it hashes the code this
    server imported) and the parsed digits. A failure here is left for the job to report."""
    from reprogrid.inputs.data import load_digits

    try:
        provenance.checked_digests(provenance.run_code_files({}))
    except provenance.CodeChanged:
        pass  # the job refuses it, naming the file
    try:
        load_digits()
    except (RuntimeError, OSError):
        pass  # no scikit-learn: only a config that names digits needs it, and its job says so


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
        from reprogrid.jobs.registry import execute

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
