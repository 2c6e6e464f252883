"""A shared MLflow tracking server on PostgreSQL, started for real by
tests/infra/start_mlflow_postgres.sh: the tiny grid logs to it over HTTP from
concurrent jobs, with the same bits as locally, and audit and replay work against it."""

import os
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import grid_runs, log_tails, run_logged, run_snakemake, tiny_config

pytestmark = pytest.mark.workflow
REPROGRID = Path(sys.executable).with_name("reprogrid")


def test_the_grid_logs_to_a_postgresql_server_with_the_same_bits(grid, mlflow_server, tmp_path):
    server_uri = mlflow_server.uri
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    done = run_snakemake(tmp_path, "--cores", "4", "--configfile", "config.yaml",
                         env={"MLFLOW_TRACKING_URI": server_uri})
    assert done.returncode == 0, done.stderr[-3000:] + log_tails(mlflow_server.log)
    assert not (tmp_path / "results" / "mlflow.db").exists()  # nothing went to a local store

    client = MlflowClient(server_uri)
    experiment = client.get_experiment_by_name("reprogrid-test")
    remote = {r.info.run_name: r for r in client.search_runs(
        [experiment.experiment_id], "tags.`reprogrid.kind` = 'run'", max_results=1000)}
    local = {r.info.run_name: r for r in grid_runs(grid)}
    assert set(remote) == set(local) and all(r.info.status == "FINISHED" for r in remote.values())
    for key, run in remote.items():
        if run.data.tags["reprogrid.expect_bitwise"] == "true":
            for name in ("init_weights", "weights", "predictions"):
                tag = f"reprogrid.hash.{name}"
                assert run.data.tags[tag] == local[key].data.tags[tag], (key, name)
    assert {a.path for a in client.list_artifacts(remote["all_fixed/t1/r1"].info.run_id)} >= {
        "run_config.json", "train.json", "env.json"}

    environment = {**os.environ, "MLFLOW_TRACKING_URI": server_uri}
    audit = run_logged([str(REPROGRID), "audit", "--experiment", "reprogrid-test"], tmp_path / "audit",
                       timeout=300, env=environment, cwd=tmp_path)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    replay = run_logged([str(REPROGRID), "replay", remote["all_fixed/t1/r2"].info.run_id], tmp_path / "replay",
                        timeout=300, env=environment, cwd=elsewhere)
    assert replay.returncode == 0 and "verdict: bitwise" in replay.stdout, replay.stdout + replay.stderr
