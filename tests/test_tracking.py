"""The MLflow module against a real SQLite store, with real concurrent writers."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from reprogrid.record.sealed import read_json
from reprogrid.steps.setup import prepare_tracking

WRITER = textwrap.dedent("""
    import os, sys, time, numpy as np
    from reprogrid.record import mlflow_store as tracking
    from reprogrid.record import mlflow_runs
    uri, experiment_id, retries, start = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
    if not retries:
        tracking.TRANSIENT_ERRORS = ()
    client = tracking.client(uri)
    features, targets = np.zeros((10, 4), np.float32), np.zeros(10, np.int64)
    open(f"{start}.ready.{os.getpid()}", "w").close()
    while not os.path.exists(start):  # every writer imported: all write at once, however slow the start-up
        time.sleep(0.005)
    for i in range(3):
        run_id = mlflow_runs.create_run(client, experiment_id, "writer", {}, tracking.now_ms())
        mlflow_runs.log_dataset(client, run_id, name="same", features=features, targets=targets,
                             sha256="ab" * 32, source_path=None)
        mlflow_runs.log_batch(client, run_id, params={"i": i}, series={"loss": {1: 1.0, 2: 0.5}})
        mlflow_runs.finish_run(client, run_id)
""")


def concurrent_writers(tmp_path, n, retries):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    prepare_tracking(uri, "concurrency", tmp_path / "tracking.json")
    experiment_id = read_json(tmp_path / "tracking.json")["experiment_id"]
    start = tmp_path / "start"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, uri, experiment_id, "1" if retries else "0", str(start)],
                         stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("start.ready.*"))) < n and time.monotonic() < deadline:
        if any(w.poll() is not None for w in writers):
            break  # a writer died before it was ready: its error is reported below
        time.sleep(0.01)
    start.touch()
    failures = [w.communicate()[1] for w in writers if w.wait() != 0]
    return MlflowClient(uri).search_runs([experiment_id]), failures


def test_concurrent_writers_of_the_same_dataset_all_land(tmp_path):
    runs, failures = concurrent_writers(tmp_path, n=6, retries=True)
    assert failures == []
    assert len(runs) == 18 and {r.info.status for r in runs} == {"FINISHED"}
    assert all(len(r.inputs.dataset_inputs) == 1 for r in runs)


def test_the_control_without_retries_collides(tmp_path):
    """What the retries are for: the same writers without them fail on a transient
    error (SQLite's reader-to-writer upgrade is refused at once, not waited for). The
    writers start writing together, once all have imported, so that a loaded machine's
    staggered start-ups do not keep them apart; up to six rounds."""
    for attempt in range(6):
        directory = tmp_path / str(attempt)
        directory.mkdir()
        _, failures = concurrent_writers(directory, n=8, retries=False)
        if failures:
            from reprogrid.record import mlflow_store as tracking

            assert any(error in failures[0] for error in tracking.TRANSIENT_ERRORS), failures[0][-2000:]
            return
    raise AssertionError("six rounds of eight writers without retries never collided: the retries test shows nothing")


def test_prepare_experiment_is_idempotent_and_sets_wal(tmp_path):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    prepare_tracking(uri, "e", tmp_path / "a.json")
    prepare_tracking(uri, "e", tmp_path / "b.json")
    assert read_json(tmp_path / "a.json") == read_json(tmp_path / "b.json")
    import sqlite3
    assert sqlite3.connect(tmp_path / "store" / "mlflow.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    location = MlflowClient(uri).get_experiment_by_name("e").artifact_location
    assert location == (tmp_path / "store" / "mlartifacts").as_uri()


def test_a_silent_tracking_server_stops_the_grid_within_the_timeout_before_any_job(tmp_path):
    """A server that accepts connections and never answers (a hung process, a
    firewall that swallows packets): refused within REPROGRID_TRACKING_TIMEOUT, before
    any job runs, instead of every MLflow call stalling for minutes."""
    import socket
    import time

    from conftest import run_snakemake, tiny_config

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # never accepted, never answered
    uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
    started = time.monotonic()
    with silent:
        done = run_snakemake(tmp_path, "--cores", "1", config=tiny_config(tracking_uri=uri),
                             env={"REPROGRID_TRACKING_TIMEOUT": "2"}, timeout=300)
    seconds = time.monotonic() - started
    assert done.returncode != 0
    assert f"the tracking server at {uri} does not answer within 2 s" in done.stderr, done.stderr[-2000:]
    assert "Finished jobid" not in done.stderr and not (tmp_path / "results" / "runs").exists()
    print(f"\nreliability: a silent tracking server stopped the grid after {seconds:.1f} s (timeout 2 s), "
          "before any job")


def test_a_tracking_server_killed_mid_grid_stops_the_grid_instead_of_stalling_it(tmp_path):
    """MLflow's client would retry each call for minutes (7 retries, 120 s each); bounded by
    REPROGRID_TRACKING_TIMEOUT, the jobs that can no longer record fail at once (a dead
    server refuses), and the grid stops well within the subprocess's bound."""
    import socket
    import time

    from conftest import run_snakemake, tiny_config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                               "--default-artifact-root", (tmp_path / "artifacts").as_uri()],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(["curl", "-sf", f"{uri}/health"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and server.poll() is None, "the MLflow server did not start"
            time.sleep(1)
        workdir = tmp_path / "grid"
        workdir.mkdir()
        config = tiny_config(tracking_uri=uri, replicates=4, seed_settings={"s": {"init": "vary"}},
                             library_configs={"t1": {"threads": 1}})
        killer = __import__("threading").Thread(target=lambda: (
            _wait_for_a_recorded_run(workdir), os.killpg(server.pid, 9)))
        killer.start()
        done = run_snakemake(workdir, "--cores", "1", config=config, timeout=240)
        killer.join()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 9)
    assert done.returncode != 0
    assert "Connection refused" in done.stderr or "Max retries exceeded" in done.stderr, done.stderr[-3000:]


def _wait_for_a_recorded_run(workdir):
    import time

    deadline = time.monotonic() + 200
    while not list((workdir / "results" / "runs").rglob("eval.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
