import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def tiny_config(**overrides) -> dict:
    """A grid small enough for tests: 2 settings x 2 libconfs x 2 replicates of a small MLP."""
    config = {
        "experiment": "reprogrid-test",
        "root_seed": 7,
        "replicates": 2,
        "dataset": {"name": "digits", "test_fraction": 0.2},
        "model": {"name": "mlp", "hidden": [32], "dropout": 0.1},
        "training": {"epochs": 2, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
        "augment": {"noise_std": 0.05},
        "seed_settings": {"all_fixed": {}, "init": {"init": "vary"}},
        "library_configs": {"t1": {"threads": 1}, "numpy_unseeded": {"seed_numpy_global": False}},
    }
    config.update(overrides)
    return config


def config_with(path: str, value) -> dict:
    """The tiny config with one dotted key (`training.epochs`) set to `value`."""
    config = tiny_config()
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


def run_snakemake(workdir: Path, *args: str, config: dict | None = None, env=None, timeout=600):
    """Run the real workflow in `workdir`, as a user would from a clone."""
    if config is not None:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        args = ("--configfile", "config.yaml", *args)
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environment.update(env or {})
    return subprocess.run(snakemake_command(workdir, *args), cwd=workdir, capture_output=True, text=True,
                          env=environment, timeout=timeout)


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]


def user_package(directory: Path, name: str, module: str, source: str) -> str:
    """A package `name` of the user's own, with one module of `source`, in `directory`
    (the workflow's working directory, from which factories are imported)."""
    import textwrap

    (directory / name).mkdir()
    (directory / name / "__init__.py").write_text("")
    (directory / name / f"{module}.py").write_text(textwrap.dedent(source))
    return name


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


GRID_STDOUT = "snakemake-stdout.txt"  # the grid fixture's, kept in its directory
KEYS = [f"{s}/{lc}/r{r}" for s in ("all_fixed", "init") for lc in ("t1", "numpy_unseeded") for r in (1, 2)]


@pytest.fixture(scope="session")
def grid(tmp_path_factory):
    """The tiny grid, run once for the whole session with `snakemake --cores 2`.
    Tests that change its files or store work on a copy."""
    workdir = tmp_path_factory.mktemp("grid")
    if shutil.which("git"):  # a project in a repository, as a user's is: MLflow's source commit is filled
        (workdir / "README").write_text("a user's project\n")
        for command in (["init", "-q"], ["add", "README"],
                        ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "start"]):
            subprocess.run(["git", "-C", str(workdir), *command], check=True, capture_output=True)
    done = run_snakemake(workdir, "--cores", "2", config=tiny_config())
    assert done.returncode == 0, done.stderr[-3000:]
    (workdir / GRID_STDOUT).write_text(done.stdout)  # what the user saw at the end
    return workdir


def grid_runs(workdir, key=None, kind="run", experiment="reprogrid-test"):
    from mlflow.tracking import MlflowClient

    fresh_database_connections()

    client = MlflowClient(f"sqlite:///{workdir}/results/mlflow.db")
    experiment = client.get_experiment_by_name(experiment)
    query = f"tags.`reprogrid.kind` = '{kind}'"
    if key:
        query += f" and tags.`reprogrid.run_key` = '{key}'"
    return client.search_runs([experiment.experiment_id], query, max_results=1000)


# --- services started by tests/infra/ (PostgreSQL + MLflow server, SLURM) -------------

def unavailable(reason: str):
    """Skip, saying why; a failure where CI requires the services."""
    if os.environ.get("REPROGRID_REQUIRE_SERVICES") == "1":
        pytest.fail(f"a service the test needs cannot start: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_logged(command: list[str], log_prefix: Path, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run `command` with its output in files (LOG_PREFIX.out, .err), not pipes: a daemon
    it starts cannot hold the output open, so nothing waits past `timeout`, when its whole
    process group is killed (returncode -9, and the output so far)."""
    import signal

    out, err = Path(f"{log_prefix}.out"), Path(f"{log_prefix}.err")
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True, start_new_session=True,
                                   stdin=subprocess.DEVNULL, **kwargs)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            stderr.write(f"\n[killed after {timeout:.0f} s]\n")
    return subprocess.CompletedProcess(command, process.returncode, out.read_text(), err.read_text())


def start_service(script: str, prefix: str, *args: str) -> tuple[Path, str, dict]:
    """Run tests/infra/SCRIPT in a fresh state directory; return (state directory, the
    NAME=VALUE it printed last, the environment it ran with). One at a time on this
    machine: the scripts may install Debian packages, and two test workers' apt-get
    would meet on dpkg's lock."""
    import fcntl

    if os.geteuid() != 0 and shutil.which("sudo") is None:
        unavailable(f"{script} needs root or sudo")
    state = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(state, 0o755)  # the daemons run as their own users
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with open(Path(tempfile.gettempdir()) / "reprogrid-test-services.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = run_logged([str(REPO / "tests" / "infra" / script), str(state), *args],
                             Path(tempfile.gettempdir()) / f"{state.name}-start", timeout=540, env=environment)
    if started.returncode != 0 or "=" not in (started.stdout.strip().splitlines() or [""])[-1]:
        stop_service(script, state, environment)
        unavailable(f"{script} could not start: {started.stderr[-1500:]}")
    return state, started.stdout.strip().splitlines()[-1], environment


def stop_service(script: str, state: Path, environment: dict) -> None:
    run_logged([str(REPO / "tests" / "infra" / script), "stop", str(state)],
               Path(tempfile.gettempdir()) / f"{state.name}-stop", timeout=120, env=environment)
    shutil.rmtree(state, ignore_errors=True)


def log_tails(*paths: Path, lines: int = 15) -> str:
    """The last lines of each service log, for a failure's message."""
    return "".join(f"\n--- {path}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                   for path in paths if path.exists())


# A shared server that stops answering would otherwise keep each MLflow call in its
# retries for many minutes (the defaults: 120 s a request, 7 retries with backoff).
HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "30", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"}


class MlflowServer(NamedTuple):
    uri: str
    log: Path


@pytest.fixture(scope="session")
def mlflow_server():
    """An MLflow tracking server on PostgreSQL (tests/infra/start_mlflow_postgres.sh)."""
    state, line, environment = start_service("start_mlflow_postgres.sh", "reprogrid-pg-", str(free_port()),
                                             str(free_port()))
    for name, value in HTTP_BOUNDS.items():
        os.environ.setdefault(name, value)  # for this test process and the jobs it starts
    yield MlflowServer(line.split("=", 1)[1], state / "mlflow.log")
    stop_service("start_mlflow_postgres.sh", state, environment)


@pytest.fixture(scope="session")
def slurm():
    """A single-node SLURM cluster (tests/infra/start_slurm.sh): its state directory,
    which holds the daemons' logs."""
    state, _, environment = start_service("start_slurm.sh", "reprogrid-slurm-")
    yield state
    stop_service("start_slurm.sh", state, environment)


def fresh_database_connections() -> None:
    """MLflow caches one store (and its pooled SQLite connections) per URI in this test
    process; a pooled connection can keep reading the snapshot it began with while the
    workflow's processes write. Closing them makes the next query see the store as it is."""
    import gc

    import sqlalchemy

    for engine in [o for o in gc.get_objects() if isinstance(o, sqlalchemy.engine.Engine)]:
        engine.dispose()
