"""The MLflow module against a real SQLite store, with real concurrent writers."""

import subprocess
import sys
import textwrap

from mlflow.tracking import MlflowClient

from reprogrid.records import read_json
from reprogrid.steps.setup import prepare_tracking

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from reprogrid import tracking
    uri, experiment_id, retries = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    if not retries:
        tracking.TRANSIENT_ERRORS = ()
    client = tracking.client(uri)
    features, targets = np.zeros((10, 4), np.float32), np.zeros(10, np.int64)
    for i in range(3):
        run_id = tracking.create_run(client, experiment_id, "writer", {}, tracking.now_ms())
        tracking.log_dataset(client, run_id, name="same", features=features, targets=targets,
                             sha256="ab" * 32, source_path=None)
        tracking.log_batch(client, run_id, params={"i": i}, series={"loss": [1.0, 0.5]})
        tracking.finish_run(client, run_id)
""")


def concurrent_writers(tmp_path, n, retries):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    prepare_tracking(uri, "concurrency", tmp_path / "tracking.json")
    experiment_id = read_json(tmp_path / "tracking.json")["experiment_id"]
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, uri, experiment_id, "1" if retries else "0"],
                         stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    failures = [w.communicate()[1] for w in writers if w.wait() != 0]
    return MlflowClient(uri).search_runs([experiment_id]), failures


def test_concurrent_writers_of_the_same_dataset_all_land(tmp_path):
    runs, failures = concurrent_writers(tmp_path, n=6, retries=True)
    assert failures == []
    assert len(runs) == 18 and {r.info.status for r in runs} == {"FINISHED"}
    assert all(len(r.inputs.dataset_inputs) == 1 for r in runs)


def test_prepare_experiment_is_idempotent_and_sets_wal(tmp_path):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    prepare_tracking(uri, "e", tmp_path / "a.json")
    prepare_tracking(uri, "e", tmp_path / "b.json")
    assert read_json(tmp_path / "a.json") == read_json(tmp_path / "b.json")
    import sqlite3
    assert sqlite3.connect(tmp_path / "store" / "mlflow.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    location = MlflowClient(uri).get_experiment_by_name("e").artifact_location
    assert location == (tmp_path / "store" / "mlartifacts").as_uri()
