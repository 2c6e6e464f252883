"""examples/own_model end to end, as a newcomer runs it: a model and data reprogrid has
never seen, named only in the config, through the whole grid, audit and replay."""

import csv
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import REPO, run_snakemake

pytestmark = pytest.mark.workflow
EXAMPLE = REPO / "examples" / "own_model"
REPROGRID = Path(sys.executable).with_name("reprogrid")


def copy_of_example(tmp_path, name="own_model") -> Path:
    workdir = tmp_path / name
    shutil.copytree(EXAMPLE, workdir, ignore=shutil.ignore_patterns("results", ".snakemake", "__pycache__"))
    return workdir


def summary(workdir):
    with open(workdir / "results" / "compare" / "summary.csv") as handle:
        return {row["setting"]: row for row in csv.DictReader(handle)}


def runs_of(workdir, experiment):
    client = MlflowClient(f"sqlite:///{workdir}/results/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], "tags.`reprogrid.kind` = 'run'")


def test_own_model_and_data_through_the_grid_audit_and_replay(tmp_path):
    workdir = copy_of_example(tmp_path)
    done = run_snakemake(workdir, "--cores", "2", "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = summary(workdir)
    assert rows["all_fixed"]["bitwise_reproducible"] == "true" and rows["all_fixed"]["expect_bitwise"] == "true"
    assert rows["init"]["distinct_weights"] == "3" and rows["init"]["first_divergent_epoch"] == "0"
    assert float(rows["all_fixed"]["test_accuracy_mean"]) > 0.8
    runs = runs_of(workdir, "own-model")
    assert len(runs) == 12
    run = runs[0]
    assert run.data.params["model.factory"] == "mypkg.models:build" and run.data.params["model.kwargs.width"] == "64"
    assert run.data.params["training.optimizer"] == "adamw" and run.data.params["training.lr_schedule"] == "cosine"
    assert run.data.tags["reprogrid.task"] == "classification"

    audit = subprocess.run([str(REPROGRID), "audit"], cwd=workdir, capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # replayed from another directory: the recorded working directory finds mypkg
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_id = next(r.info.run_id for r in runs if r.info.run_name == "all_fixed/t1/r2")
    uri = f"sqlite:///{workdir}/results/mlflow.db"
    replay = subprocess.run([str(REPROGRID), "replay", run_id, "--tracking-uri", uri], cwd=elsewhere,
                            capture_output=True, text=True)
    assert replay.returncode == 0 and "verdict: bitwise" in replay.stdout, replay.stdout + replay.stderr

    # editing the user's model changes the code hash: the audit sees the drift
    (workdir / "mypkg" / "models.py").write_text((workdir / "mypkg" / "models.py").read_text() + "\n# edited\n")
    again = run_snakemake(workdir, "--cores", "2", "--configfile", "config.yaml", "--forcerun", "train",
                          "results/runs/all_fixed/t1/r1/eval.json")
    assert again.returncode == 0, again.stderr[-3000:]
    codes = {r.data.tags["reprogrid.hash.code"] for r in runs_of(workdir, "own-model")}
    assert len(codes) == 2


def test_a_file_dataset_regression_records_the_file(tmp_path):
    workdir = copy_of_example(tmp_path)
    done = run_snakemake(workdir, "--cores", "2", "--configfile", "regression.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = summary(workdir)
    assert rows["all_fixed"]["bitwise_reproducible"] == "true" and rows["all_fixed"]["test_accuracy_mean"] == ""
    assert float(rows["all_fixed"]["test_rmse_std"]) == 0.0 and float(rows["init"]["test_rmse_std"]) > 0
    assert rows["init"]["disagreement_mean"] == ""  # no classes to disagree on
    data = (workdir / "data" / "sines.csv").read_bytes()
    for run in runs_of(workdir, "own-model-regression"):
        assert run.data.tags["reprogrid.task"] == "regression"
        assert run.data.tags["reprogrid.data.file_sha256"] == hashlib.sha256(data).hexdigest()
        assert run.data.tags["reprogrid.data.file_size"] == str(len(data))
        assert "test_rmse" in run.data.metrics


def test_a_broken_factory_stops_the_workflow_before_any_run(tmp_path):
    workdir = copy_of_example(tmp_path)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["model"]["kwargs"]["inputs"] = 7  # the spirals have 2 features
    (workdir / "broken.yaml").write_text(yaml.safe_dump(config))
    done = run_snakemake(workdir, "--cores", "2", "--configfile", "broken.yaml")
    assert done.returncode != 0
    assert "config key model.factory: the model cannot take the data" in done.stderr, done.stderr[-2000:]
    # tried before the store is touched: no store, no run
    assert not (workdir / "results" / "mlflow.db").exists() and not (workdir / "results" / "runs").exists()
