"""Warm workers against a real server process: where jobs run, what they see, and
that nothing outlives the job or the workflow that started it."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, tiny_config
from reprogrid import config as cfg
from reprogrid.jobs import warm_client as warm
from reprogrid.jobs.runner import StepFailed, run
from reprogrid.record.sealed import read_json
from reprogrid.workflow import STEP_SCRIPT

STEP = [sys.executable, str(STEP_SCRIPT)]


@pytest.fixture(scope="module")
def server():
    process = warm.start()
    yield process
    warm.stop(process)
    assert process.poll() is not None


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def logged_pid(log: Path) -> int:
    return int(re.search(r"\[pid (\d+)\]", log.read_text()).group(1))


def pools(train_json: Path) -> dict[str, int]:
    return {p["user_api"]: p["num_threads"] for p in read_json(train_json)["library_effective"]["thread_pools"]}


def test_a_step_runs_in_a_warm_child_in_the_jobs_directory_and_environment(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the server loaded its native libraries single-threaded; this job asks for two
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    run("tracking", {"uri": "sqlite:///store/mlflow.db", "experiment": "warm", "out_path": "tracking.json"},
        "logs/tracking.log")
    assert read_json(tmp_path / "tracking.json")["experiment"] == "warm"
    assert (tmp_path / "store" / "mlflow.db").is_file()  # relative to the job's directory
    assert logged_pid(tmp_path / "logs" / "tracking.log") != os.getpid()
    run_config = cfg.resolve_run_config(tiny_config(training={"epochs": 1}), "all_fixed", "t1", 1)
    run("seed", {"setting": "all_fixed", "libconf": "t1", "replicate": 1, "root_seed": 1,
                 "modes": run_config["seed_modes"], "out_path": "seeds.json"}, "logs/seed.log")
    assert logged_pid(tmp_path / "logs" / "seed.log") != os.getpid()  # NumPy's import is cheaper forked
    run("train", {"run_config": run_config, "seeds_path": "seeds.json",
                  "model_path": "model.pt", "train_json_path": "train.json"}, "logs/train.log")
    record = read_json(tmp_path / "train.json")
    assert record["executor"] == "warm" and logged_pid(tmp_path / "logs" / "train.log") != os.getpid()
    # what threadpoolctl read inside the training process: the job's sizes, not the server's
    assert pools(tmp_path / "train.json")["blas"] == 2
    assert record["library_effective"]["env_vars"]["OPENBLAS_NUM_THREADS"] == "2"
    assert "warm child pid" in (tmp_path / "logs" / "train.log").read_text()  # its CPU time and memory


def test_a_job_whose_load_time_settings_differ_from_the_servers_runs_in_its_own_process(server, tmp_path,
                                                                                         monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_SCHEDULE", "static")  # read by OpenMP once, when it loads
    run_config = cfg.resolve_run_config(tiny_config(training={"epochs": 1}), "all_fixed", "t1", 1)
    run("seed", {"setting": "all_fixed", "libconf": "t1", "replicate": 1, "root_seed": 1,
                 "modes": run_config["seed_modes"], "out_path": "seeds.json"}, "logs/seed.log")
    run("train", {"run_config": run_config, "seeds_path": "seeds.json",
                  "model_path": "model.pt", "train_json_path": "train.json"}, "logs/train.log")
    assert "declined: the job sets OMP_SCHEDULE differently" in capfd.readouterr().err
    record = read_json(tmp_path / "train.json")
    assert record["executor"] == "fresh" and logged_pid(tmp_path / "logs" / "train.log") == os.getpid()
    assert record["library_effective"]["env_vars"]["OMP_SCHEDULE"] == "static"


def test_the_server_refuses_to_fork_with_a_second_thread(tmp_path):
    probe = subprocess.run([sys.executable, "-c", "import threading, time\nfrom reprogrid.jobs import warm_server\n"
                            "print(warm_server.fork_hazard())\nthreading.Thread(target=time.sleep, args=(5,)).start()\n"
                            "print(warm_server.fork_hazard())"], capture_output=True, text=True, timeout=60,
                           env=os.environ | warm.SERVER_ENV)
    before, after = probe.stdout.splitlines()
    assert before == "None" and after == "the warm server runs 2 threads; forking it is not safe"


def test_a_job_waits_a_bounded_time_for_a_stopped_server(server, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(warm.START_TIMEOUT_ENV, "1")
    os.kill(server.pid, signal.SIGSTOP)
    try:
        run("tracking", {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "stopped",
                         "out_path": str(tmp_path / "tracking.json")}, str(tmp_path / "tracking.log"))
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert "warm worker unavailable (TimeoutError" in capfd.readouterr().err
    assert logged_pid(tmp_path / "tracking.log") == os.getpid()  # ran here instead


def test_a_stopped_server_is_never_handed_the_runs_lock(server, tmp_path, monkeypatch):
    """A job gives up on a stopped server and runs in its own process: once it is done,
    its run's lock is free (no copy of it waits in the stopped server's backlog)."""
    from reprogrid.jobs import runlock

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(warm.START_TIMEOUT_ENV, "1")
    os.kill(server.pid, signal.SIGSTOP)
    try:
        run("tracking", {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "stopped",
                         "out_path": str(tmp_path / "tracking.json")}, str(tmp_path / "tracking.log"),
            run_key="s/l/r1")
        os.close(runlock.acquire("s/l/r1", timeout=0.5))  # RunLocked if a copy were in flight
    finally:
        os.kill(server.pid, signal.SIGCONT)


def test_a_job_queued_in_a_server_that_dies_runs_in_its_own_process(tmp_path, monkeypatch, capfd):
    """A job waiting for the server's imports when the server dies: no traceback, no
    failed grid; the job says so and runs where it is."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(warm.SOCKET_ENV, raising=False)  # the module's server is pointed at again afterwards
    fresh = warm.start()  # still importing torch: a tracking job waits for MLflow's stage
    try:
        killer = threading.Timer(0.5, lambda: os.kill(fresh.pid, signal.SIGKILL))
        killer.start()
        run("tracking", {"uri": "sqlite:///mlflow.db", "experiment": "orphaned", "out_path": "tracking.json"},
            "tracking.log")
        killer.join()
    finally:
        warm.stop(fresh)
    assert "warm worker unavailable" in capfd.readouterr().err
    assert logged_pid(tmp_path / "tracking.log") == os.getpid()  # ran here instead
    assert read_json(tmp_path / "tracking.json")["experiment"] == "orphaned"


def test_a_failing_step_reports_its_traceback_and_fails_the_job(server, tmp_path):
    kwargs = {"train_json_path": str(tmp_path / "missing.json"), "model_path": "m.pt",
              "tracking_path": "t.json", "eval_json_path": "e.json", "predictions_path": "p.npz"}
    with pytest.raises(StepFailed, match="FileNotFoundError"):
        run("evaluate", kwargs, str(tmp_path / "evaluate.log"))
    assert "FileNotFoundError" in (tmp_path / "evaluate.log").read_text()
    job = subprocess.run([*STEP, "evaluate", str(tmp_path / "e2.log"), *(f"{k}={v}" for k, v in kwargs.items())],
                         capture_output=True, text=True)
    assert job.returncode == 1 and "FileNotFoundError" in job.stderr


def test_killing_the_job_kills_its_warm_child(server, tmp_path):
    config = tiny_config(training={"epochs": 5000}, library_configs={"t1": {}})
    run_config = cfg.resolve_run_config(config, "all_fixed", "t1", 1)
    run("tracking", {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "kill",
                     "out_path": str(tmp_path / "tracking.json")}, str(tmp_path / "tracking.log"))
    run("seed", {"setting": "all_fixed", "libconf": "t1", "replicate": 1, "root_seed": 1,
                 "modes": run_config["seed_modes"], "out_path": str(tmp_path / "seeds.json")},
        str(tmp_path / "seed.log"))
    kwargs = {"run_config": run_config, "seeds_path": str(tmp_path / "seeds.json"),
              "model_path": str(tmp_path / "model.pt"),
              "train_json_path": str(tmp_path / "train.json")}
    arguments = [f"{k}={v}" for k, v in kwargs.items() if k != "run_config"]
    job = subprocess.Popen([*STEP, "train", str(tmp_path / "train.log"),
                            f"run_config:={json.dumps(run_config)}", *arguments])
    assert wait_for(lambda: children_of(server.pid)), "no warm child started"
    child = children_of(server.pid)[0]
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert wait_for(lambda: not Path(f"/proc/{child}").exists() or
                    Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", timeout=5)
    assert not (tmp_path / "train.json").exists()


def test_the_server_ends_with_the_process_that_started_it(tmp_path):
    starter = subprocess.run(
        [sys.executable, "-c", "import os; from reprogrid.jobs import warm_client as warm; "
         "print(warm.start().pid, flush=True); os._exit(0)"],
        capture_output=True, text=True, check=True,
    )
    pid = int(starter.stdout)
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=30)


def test_no_warm_workers_inside_cluster_jobs_or_when_switched_off(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv(warm.SWITCH_ENV, raising=False)
    assert warm.enabled()
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert not warm.enabled()
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv(warm.SWITCH_ENV, "0")
    assert not warm.enabled() and warm.start() is None


def test_step_arguments_are_strings_or_json():
    from reprogrid.jobs.runner import parse_arguments

    assert parse_arguments(["path=results/a b.json", "config:={\"x\": [1, 2]}", "n:=3", "s=3"]) == {
        "path": "results/a b.json", "config": {"x": [1, 2]}, "n": 3, "s": "3"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_arguments(["oops"])


def test_the_server_computes_what_every_job_shares_before_it_forks():
    """Loading the training stage computes the code hash's closure and parses the digits
    in the server, once, for every child it forks; the digits are shared read-only, so
    no job can change another's."""
    code = ("from reprogrid.jobs import warm_server; from reprogrid.record import provenance; "
            "from reprogrid.inputs import data; warm_server._load('torch'); "
            "print(provenance.closure.cache_info().currsize, data.load_digits.cache_info().currsize); "
            "features, labels = data.load_digits(); "
            "print(data.load_digits.cache_info().hits, features.flags.writeable, labels.flags.writeable)")
    shared = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert shared.stdout.split() == ["1", "1", "1", "False", "False"], shared.stdout + shared.stderr[-2000:]


def test_the_server_opens_a_recording_jobs_store_once_and_no_connection_crosses_the_fork(tmp_path):
    """Before forking the first evaluate job, the server opens its store (children inherit
    MLflow's store object and engine) and closes every connection again: a forked child
    writes through a connection of its own, and what it wrote reads back."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # the store is created in a process of its own, as the workflow's `tracking` step does
    created = subprocess.run([sys.executable, "-m", "reprogrid.jobs.runner", "tracking", "tracking.log",
                              f"uri:={json.dumps(uri)}", 'experiment:="warm-store"', 'out_path:="tracking.json"'],
                             env=os.environ | {warm.SWITCH_ENV: "0"}, capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
    assert created.returncode == 0, created.stderr[-3000:]
    code = """
import json, os
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from reprogrid.jobs import warm_server
from reprogrid.record import mlflow_store, mlflow_runs
tracked = json.load(open("tracking.json"))
uri, experiment_id = tracked["tracking_uri"], tracked["experiment_id"]
evaluate = {"step": "evaluate", "kwargs": {"tracking_path": "tracking.json"}, "cwd": os.getcwd()}
warm_server._open_store(evaluate, set())
print("opened in server:", list(SqlAlchemyStore._engine_map) == [uri])
def open_files():
    for fd in os.listdir("/proc/self/fd"):
        try:
            yield os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, closed by now
            pass
print("open in server:", [path for path in open_files() if "mlflow.db" in path])
store = mlflow_store.client(uri)._tracking_client.store
child = os.fork()
if child == 0:
    mlflow_client = mlflow_store.client(uri)
    status = int(mlflow_client._tracking_client.store is not store)  # inherited, not opened anew
    run_id = mlflow_runs.create_run(mlflow_client, experiment_id, "s/l/r1", {"reprogrid.kind": "run"}, 0)
    mlflow_runs.log_batch(mlflow_client, run_id, metrics={"m": 1.5})
    os._exit(status)
assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0, "the child did not record through the inherited store"
print("recorded:", [run.data.metrics for run in mlflow_store.client(uri).search_runs([experiment_id])])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "opened in server: True" in done.stdout
    assert "open in server: []" in done.stdout
    assert "recorded: [{'m': 1.5}]" in done.stdout
