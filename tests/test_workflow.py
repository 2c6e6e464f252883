"""The real workflow, run as a user runs it: `snakemake --cores 2` on a tiny grid in a
temporary directory, then the files and what MlflowClient reads back."""

import csv
import json
import re
import shutil

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import GRID_STDOUT, KEYS, grid_runs, run_snakemake, tiny_config
from reprogrid.config import SOURCES

pytestmark = pytest.mark.workflow

HASHES = ["data", "code", "config", "env", "library", "init_weights", "weights", "predictions"]
RUN_FILES = ["seeds.json", "model.pt", "train.json", "eval.json", "predictions.npz", "weights.npy"]
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def summary_rows(workdir):
    with open(workdir / "results" / "compare" / "summary.csv") as handle:
        return {(r["setting"], r["libconf"]): r for r in csv.DictReader(handle)}


def test_every_run_writes_its_files_and_compare_its_report(grid):
    for key in KEYS:
        for name in RUN_FILES:
            assert (grid / "results" / "runs" / key / name).is_file(), (key, name)
    for name in ("summary.csv", "pairs.csv", "report.html"):
        assert (grid / "results" / "compare" / name).stat().st_size > 0
    assert json.loads((grid / "results" / "audit.json").read_text())["ok"] is True
    assert "<img" in (grid / "results" / "compare" / "report.html").read_text()


def test_mlflow_holds_one_finished_run_per_grid_run_with_the_full_contract(grid):
    runs = grid_runs(grid)
    assert sorted(r.info.run_name for r in runs) == sorted(KEYS)
    for run in runs:
        key = run.info.run_name
        assert run.info.status == "FINISHED", key
        assert run.data.tags["reprogrid.run_key"] == key
        for source in SOURCES:
            assert run.data.params[f"seed.{source}"].isdigit(), (key, source)
            assert f"seed_mode.{source}" in run.data.params
        for name in HASHES:
            assert SHA256.match(run.data.tags[f"reprogrid.hash.{name}"]), (key, name)
        assert run.data.params["lib.threads"] in ("1",)
        for metric in ("test_accuracy", "test_loss", "train_seconds", "eval_seconds", "train_loss"):
            assert metric in run.data.metrics, (key, metric)
        inputs = run.inputs.dataset_inputs
        assert inputs[0].dataset.digest == run.data.tags["reprogrid.hash.data"][:36]
    client = MlflowClient(f"sqlite:///{grid}/results/mlflow.db")
    history = client.get_metric_history(runs[0].info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]
    experiment = client.get_experiment_by_name("reprogrid-test")
    compare = client.search_runs([experiment.experiment_id], "tags.`reprogrid.kind` = 'compare'")
    assert len(compare) == 1
    artifacts = {a.path for a in client.list_artifacts(compare[0].info.run_id)}
    assert artifacts == {"summary.csv", "pairs.csv", "attribution.csv", "libconfs.csv", "divergence.csv", "power.csv",
                         "versus.csv", "variants.csv", "report.html", "figures"}
    figures = {a.path for a in client.list_artifacts(compare[0].info.run_id, "figures")}
    assert figures == {f"figures/{name}.png" for name in ("attribution", "accuracy", "disagreement", "cost", "variants")}


def test_fixed_sources_are_bitwise_equal_and_varied_ones_differ(grid):
    tags = {r.info.run_name: r.data.tags for r in grid_runs(grid)}

    def same(a, b, what):
        return tags[a][f"reprogrid.hash.{what}"] == tags[b][f"reprogrid.hash.{what}"]

    assert same("all_fixed/t1/r1", "all_fixed/t1/r2", "weights")
    assert same("all_fixed/t1/r1", "all_fixed/t1/r2", "predictions")
    assert not same("init/t1/r1", "init/t1/r2", "init_weights")
    assert not same("init/t1/r1", "init/t1/r2", "weights")
    # NumPy's global RNG left unseeded: the augmentation differs although every seed is fixed
    assert same("all_fixed/numpy_unseeded/r1", "all_fixed/numpy_unseeded/r2", "init_weights")
    assert not same("all_fixed/numpy_unseeded/r1", "all_fixed/numpy_unseeded/r2", "weights")
    assert tags["all_fixed/t1/r1"]["reprogrid.expect_bitwise"] == "true"
    assert tags["all_fixed/numpy_unseeded/r1"]["reprogrid.expect_bitwise"] == "false"

    rows = summary_rows(grid)
    assert rows[("all_fixed", "t1")]["bitwise_reproducible"] == "true"
    assert rows[("init", "t1")]["bitwise_reproducible"] == "false"
    assert rows[("all_fixed", "numpy_unseeded")]["bitwise_reproducible"] == "false"
    assert rows[("all_fixed", "numpy_unseeded")]["expect_bitwise"] == "false"


def test_the_rng_trace_names_numpys_generator_where_it_is_left_unseeded_and_the_report_says_so(grid):
    for key in KEYS:
        record = json.loads((grid / "results" / "runs" / key / "train.json").read_text())
        # the built-in loop: augmentation noise from NumPy's global generator, dropout from torch's
        assert record["rng"]["train"] == ["numpy", "torch"] and record["rng"]["init"] == ["torch"], key
        assert all(epoch["rng"] == ["numpy", "torch"] for epoch in record["epochs"]), key
        assert record["expect_bitwise"] == (key.startswith("all_fixed/t1/")), key
    for run in grid_runs(grid):
        assert run.data.tags["reprogrid.rng.train"] == "numpy,torch" and run.data.tags["reprogrid.rng.evaluate"] == ""
    with open(grid / "results" / "compare" / "summary.csv") as handle:
        unseeded = {(r["setting"], r["libconf"]): r["rng_unseeded"] for r in csv.DictReader(handle)}
    assert unseeded == {("all_fixed", "t1"): "", ("init", "t1"): "", ("all_fixed", "numpy_unseeded"): "numpy",
                        ("init", "numpy_unseeded"): "numpy"}
    report = (grid / "results" / "compare" / "report.html").read_text()
    assert ("<b>all_fixed × numpy_unseeded</b>: training drew from NumPy&#39;s global generator and torch&#39;s "
            "global generator, in every epoch; numpy_unseeded leaves NumPy&#39;s global generator unseeded, so runs "
            "differ.") in report


def test_summary_accuracy_is_recomputable_from_the_predictions(grid):
    rows = summary_rows(grid)
    accuracies = []
    for r in (1, 2):
        with np.load(grid / "results" / "runs" / f"init/t1/r{r}" / "predictions.npz") as stored:
            accuracies.append(float((stored["logits"].argmax(1) == stored["labels"]).mean()))
    assert float(rows[("init", "t1")]["test_accuracy_mean"]) == pytest.approx(np.mean(accuracies))


def test_a_forced_rerun_of_one_rule_logs_a_second_bitwise_identical_run(grid, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(grid, workdir, symlinks=True)
    key = "all_fixed/t1/r1"
    # the command as the README gives it: --forcerun swallows the path; rule all makes it the target
    done = run_snakemake(workdir, "--cores", "1", "--configfile", "config.yaml",
                         "--forcerun", "train", f"results/runs/{key}/eval.json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"train\s+1\n", done.stderr) and re.search(r"evaluate\s+1\n", done.stderr)
    attempts = grid_runs(workdir, key)
    assert len(attempts) == 2 and {r.info.status for r in attempts} == {"FINISHED"}
    for what in ("init_weights", "weights", "predictions", "config", "data", "code"):
        assert len({r.data.tags[f"reprogrid.hash.{what}"] for r in attempts}) == 1, what
    assert len(grid_runs(workdir)) == len(KEYS) + 1
    # one run rerun alone: compare and audit did not run, so no summary of the grid is printed
    assert "in MLflow experiment" not in done.stdout, done.stdout


def test_a_grid_ends_with_the_lines_a_user_wants(grid):
    """After Snakemake's log: the cells against their prediction, the audit, the report, the UI."""
    printed = (grid / GRID_STDOUT).read_text().strip().splitlines()
    cells = list(summary_rows(grid).values())
    as_predicted = [c for c in cells if c["bitwise_reproducible"] != "" and
                    (c["bitwise_reproducible"] == "true") == (c["expect_bitwise"] == "true")]
    bitwise = sum(c["bitwise_reproducible"] == "true" for c in as_predicted)
    assert len(as_predicted) == len(cells)  # the tiny grid holds no surprise: no line for one
    experiment_id = json.loads((grid / "results" / "tracking.json").read_text())["experiment_id"]
    expected = [
        f"reprogrid: {len(cells)} cells, {len(KEYS)} runs, in MLflow experiment 'reprogrid-test'",
        f"  as predicted: {bitwise} bitwise reproducible, {len(cells) - bitwise} differing between replicates",
        "  audit: OK",
        "  report: results/compare/report.html",
        "  MLflow UI: mlflow ui --backend-store-uri sqlite:///results/mlflow.db, then open "
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}?workflowType=machine_learning",
    ]
    assert printed[-len(expected):] == expected, printed
    assert json.loads((grid / "results" / "audit.json").read_text())["ok"] is True


def test_nothing_reruns_when_nothing_changed_and_an_edit_reruns_only_what_it_touches(grid, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(grid, workdir, symlinks=True)
    unchanged = run_snakemake(workdir, "--cores", "1", "-n", config=tiny_config())
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr
    more = tiny_config(replicates=3)
    edited = run_snakemake(workdir, "--cores", "1", "-n", config=more)
    assert re.search(r"train\s+4\n", edited.stdout), edited.stdout  # one new replicate per cell
    model = tiny_config(model={"name": "mlp", "hidden": [8], "dropout": 0.1})
    edited = run_snakemake(workdir, "--cores", "1", "-n", config=model)
    assert re.search(r"train\s+8\n", edited.stdout), edited.stdout  # every run's config changed
    assert not re.search(r"\nseed\s+\d", edited.stdout)  # the seeds did not


def test_warm_workers_change_no_bit(tmp_path):
    """The demo's CNN under one and two threads and with two loader workers: the same
    runs in warm children and in fresh processes hash exactly alike, the effective
    library state (thread pools included) too."""
    config = tiny_config(
        model={"name": "cnn", "channels": [4, 8], "dropout": 0.2}, replicates=1,
        seed_settings={"all_fixed": {}, "all_vary": {"init": "vary", "order": "vary", "dropout": "vary",
                                                      "augment": "vary"}},
        library_configs={"t1": {"threads": 1}, "t2": {"threads": 2}, "workers2": {"num_workers": 2}})
    tags = {}
    for executor, switch in (("warm", "1"), ("fresh", "0")):
        (tmp_path / executor).mkdir()
        done = run_snakemake(tmp_path / executor, "--cores", "2", config=config,
                             env={"REPROGRID_WARM_WORKERS": switch})
        assert done.returncode == 0, done.stderr[-3000:]
        tags[executor] = {r.info.run_name: r.data.tags for r in grid_runs(tmp_path / executor)}
        assert {t["reprogrid.executor"] for t in tags[executor].values()} == {executor}
    assert sorted(tags["warm"]) == sorted(tags["fresh"]) and len(tags["warm"]) == 6
    for key, fresh in tags["fresh"].items():
        for name in HASHES:
            assert tags["warm"][key][f"reprogrid.hash.{name}"] == fresh[f"reprogrid.hash.{name}"], (key, name)
