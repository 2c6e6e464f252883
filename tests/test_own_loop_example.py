"""examples/own_loop end to end: a user's own training loop with two third-party
augmentations drawing from global generators (kornia: torch's; Cutout: Python's
random), through the grid, the report, the audit and a replay from MLflow alone."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, run_snakemake

pytestmark = pytest.mark.workflow
EXAMPLE = REPO / "examples" / "own_loop"
REPROGRID = Path(sys.executable).with_name("reprogrid")


def test_own_loop_through_the_grid_report_audit_and_replay(tmp_path):
    workdir = tmp_path / "own_loop"
    shutil.copytree(EXAMPLE, workdir, ignore=shutil.ignore_patterns("results", ".snakemake", "__pycache__"))
    done = run_snakemake(workdir, "--cores", "2", "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    with open(workdir / "results" / "compare" / "summary.csv") as handle:
        cells = {row["libconf"]: row for row in csv.DictReader(handle)}

    # everything seeded: bitwise, as predicted, though the loop drew from two global generators
    assert cells["seeded"]["rng_train"] == "python,torch" and cells["seeded"]["rng_unseeded"] == ""
    assert cells["seeded"]["expect_bitwise"] == "true" and cells["seeded"]["bitwise_reproducible"] == "true"
    # Python's random left unseeded: the trace names it, the prediction says no, the runs differ
    assert cells["nopy"]["rng_unseeded"] == "python"
    assert cells["nopy"]["expect_bitwise"] == "false" and cells["nopy"]["bitwise_reproducible"] == "false"
    # two loader workers whose seed_worker gives them one Python random state
    assert cells["workers"]["worker_rng_duplicated"] == "python"
    report = (workdir / "results" / "compare" / "report.html").read_text()
    assert ("training drew from Python&#39;s random and torch&#39;s global generator, in every epoch; nopy "
            "leaves Python&#39;s random unseeded, so runs differ") in report
    assert "workers started Python&#39;s random in one same state" in report

    uri = f"sqlite:///{workdir}/results/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("own-loop")
    runs = client.search_runs([experiment.experiment_id], "tags.`reprogrid.kind` = 'run'")
    by_key = {r.data.tags["reprogrid.run_key"]: r for r in runs}
    assert by_key["all_fixed/nopy/r1"].data.tags["reprogrid.rng.train"] == "python,torch"
    assert by_key["all_fixed/workers/r1"].data.tags["reprogrid.worker_rng_duplicated"] == "python"
    # the MLflow UI's Source column names the user's own loop
    assert {r.data.tags["mlflow.source.name"] for r in runs} == {"looppkg.train:fit"}
    audit = subprocess.run([str(REPROGRID), "audit"], cwd=workdir, capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # where the nopy replicates part, through the user's own loop: the batch, from Python's random
    found_path = workdir / "nopy.json"
    diverge = subprocess.run([str(REPROGRID), "diverge", by_key["all_fixed/nopy/r1"].info.run_id,
                              by_key["all_fixed/nopy/r2"].info.run_id, "--json", str(found_path)],
                             cwd=workdir, capture_output=True, text=True, timeout=300)
    assert diverge.returncode == 1, diverge.stderr[-2000:]
    found = json.loads(found_path.read_text())
    assert (found["cause"], found["generator"], found["epoch"], found["step"]) == ("input", "python", 1, 1)

    # replayed from another directory, from the MLflow record alone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_id = by_key["all_fixed/seeded/r1"].info.run_id
    replay = subprocess.run([str(REPROGRID), "replay", run_id, "--tracking-uri", uri], cwd=elsewhere,
                            capture_output=True, text=True, timeout=600)
    assert replay.returncode == 0 and "verdict: bitwise" in replay.stdout, replay.stdout + replay.stderr
