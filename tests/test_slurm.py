"""The tiny grid on a real single-node SLURM cluster (tests/infra/start_slurm.sh) through
Snakemake's SLURM executor plugin and profiles/slurm: the same results and MLflow
contract as locally, bitwise where every source is fixed; and with the PostgreSQL-backed
tracking server at once."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import REPO, SNAKEMAKE, grid_runs, log_tails, run_logged, tiny_config

pytestmark = pytest.mark.workflow
# quick polling for short test jobs; the profile keeps a cluster's usual pace
FAST = ["--seconds-between-status-checks", "2", "--slurm-init-seconds-before-status-checks", "1"]
HASHES = ("data", "config", "init_weights", "weights", "predictions")


def on_slurm(workdir: Path, config: dict, env: dict | None = None) -> subprocess.CompletedProcess:
    """`snakemake --profile profiles/slurm` from workdir with the project's environment on
    PATH (jobs inherit it), killed with all it started if it runs past 8 min."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environment |= {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **(env or {})}
    return run_logged([str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--profile",
                       str(REPO / "profiles" / "slurm"), "--configfile", "config.yaml", *FAST],
                      workdir / "snakemake", timeout=480, cwd=workdir, env=environment)


def why(done: subprocess.CompletedProcess, cluster: Path, *logs: Path) -> str:
    """What a failed run said, with the ends of the cluster's (and server's) logs."""
    return done.stderr[-3000:] + log_tails(cluster / "slurmctld.log", cluster / "slurmd.log", *logs)


def assert_same_as_local(runs: dict, local: dict) -> None:
    assert set(runs) == set(local) and all(r.info.status == "FINISHED" for r in runs.values())
    for key, run in runs.items():
        assert run.data.tags["reprogrid.expect_bitwise"] == local[key].data.tags["reprogrid.expect_bitwise"]
        if run.data.tags["reprogrid.expect_bitwise"] == "true":
            for name in HASHES:
                assert run.data.tags[f"reprogrid.hash.{name}"] == local[key].data.tags[f"reprogrid.hash.{name}"], \
                    (key, name)


def test_the_grid_on_slurm_matches_the_local_grid(grid, slurm, tmp_path):
    done = on_slurm(tmp_path, tiny_config())
    assert done.returncode == 0, why(done, slurm)
    local = {r.info.run_name: r for r in grid_runs(grid)}
    remote = {r.info.run_name: r for r in grid_runs(tmp_path)}
    assert_same_as_local(remote, local)
    with open(tmp_path / "results" / "compare" / "summary.csv") as a, \
            open(grid / "results" / "compare" / "summary.csv") as b:
        ours, theirs = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [(r["setting"], r["libconf"], r["distinct_weights"], r["bitwise_reproducible"]) for r in ours] == \
           [(r["setting"], r["libconf"], r["distinct_weights"], r["bitwise_reproducible"]) for r in theirs]
    # trained inside SLURM jobs, each its own
    job_ids = {r.data.tags.get("reprogrid.slurm_job_id") for r in remote.values()}
    assert None not in job_ids and len(job_ids) == len(remote)


def test_slurm_jobs_log_to_the_shared_postgresql_server(grid, slurm, mlflow_server, tmp_path):
    server_uri = mlflow_server.uri
    # one cell of the tiny grid (the whole grid on SLURM is the test above): the jobs
    # reach the server from inside their allocations and record the local bits
    cell = tiny_config(experiment="reprogrid-slurm-server", seed_settings={"all_fixed": {}},
                       library_configs={"t1": {"threads": 1}})
    done = on_slurm(tmp_path, cell, env={"MLFLOW_TRACKING_URI": server_uri})
    assert done.returncode == 0, why(done, slurm, mlflow_server.log)
    client = MlflowClient(server_uri)
    experiment = client.get_experiment_by_name("reprogrid-slurm-server")
    remote = {r.info.run_name: r for r in client.search_runs(
        [experiment.experiment_id], "tags.`reprogrid.kind` = 'run'", max_results=1000)}
    local = {r.info.run_name: r for r in grid_runs(grid) if r.info.run_name.startswith("all_fixed/t1/")}
    assert len(remote) == 2 and remote["all_fixed/t1/r1"].data.tags["reprogrid.expect_bitwise"] == "true"
    assert_same_as_local(remote, local)
    assert all(r.data.tags.get("reprogrid.slurm_job_id") for r in remote.values())
