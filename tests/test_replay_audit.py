"""`reprogrid replay` and `reprogrid audit` as a user runs them, against the real store
of a real tiny grid, from directories that never saw `results/`."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, grid_runs, run_snakemake, tiny_config

pytestmark = pytest.mark.workflow
REPROGRID = [sys.executable, "-m", "reprogrid.cli"]


def reprogrid(*args, cwd, env=None):
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | (env or {})
    return subprocess.run([*REPROGRID, *args], cwd=cwd, capture_output=True, text=True, env=environment,
                          timeout=600)


def store(workdir) -> str:
    return f"sqlite:///{workdir}/results/mlflow.db"


def run_id(workdir, key) -> str:
    return grid_runs(workdir, key)[0].info.run_id


def test_audit_passes_on_a_clean_grid(grid, tmp_path):
    done = reprogrid("audit", "--tracking-uri", store(grid), "--json", "audit.json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all_fixed × t1" in done.stdout and "OK" in done.stdout
    report = json.loads((tmp_path / "audit.json").read_text())
    assert report["ok"] and report["counts"]["expected"] == 8


def test_replay_of_an_all_fixed_run_is_bitwise_from_anywhere(grid, tmp_path):
    original = run_id(grid, "all_fixed/t1/r2")
    done = reprogrid("replay", original, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": store(grid)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: bitwise" in done.stdout
    assert not (tmp_path / "results").exists()
    replays = grid_runs(grid, "all_fixed/t1/r2", kind="replay")
    tags = next(r.data.tags for r in replays if r.data.tags["reprogrid.replay_of"] == original)
    assert tags["reprogrid.replay.verdict"] == "bitwise"


def test_replay_with_numpy_left_unseeded_diverges_from_the_first_epoch(grid, tmp_path):
    done = reprogrid("replay", run_id(grid, "all_fixed/numpy_unseeded/r1"), "--tracking-uri", store(grid),
                     cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verdict: diverged" in done.stdout and "first divergent epoch 1" in done.stdout


def test_replay_after_a_one_line_code_change_names_code(grid, tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "reprogrid", checkout / "reprogrid", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "Snakefile", checkout / "Snakefile")
    changed = checkout / "reprogrid" / "training" / "loop.py"  # the built-in loop: in every run's code
    assert changed.exists()
    with open(changed, "a") as handle:
        handle.write("# a harmless one-line change\n")
    done = reprogrid("replay", run_id(grid, "init/t1/r1"), "--tracking-uri", store(grid), cwd=tmp_path,
                     env={"PYTHONPATH": str(checkout)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "verdict: inputs changed (code)" in done.stdout
    assert "weights" in done.stdout and "first divergent epoch" not in done.stdout  # outputs still equal


def test_a_tampered_weights_hash_fails_the_audit_and_names_the_key(grid, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(grid, copy, symlinks=True)
    tampered = grid_runs(copy, "all_fixed/t1/r1")[0].info.run_id
    MlflowClient(store(copy)).set_tag(tampered, "reprogrid.hash.weights", "0" * 64)
    done = reprogrid("audit", "--tracking-uri", store(copy), "--experiment", "reprogrid-test", cwd=tmp_path)
    assert done.returncode == 1
    assert "VIOLATION [not_bitwise]" in done.stdout and "all_fixed/t1/r1" in done.stdout


def test_a_grid_stopped_before_evaluate_has_nothing_in_mlflow_and_the_audit_names_what_is_missing(tmp_path):
    config = tiny_config(cells=[["all_fixed", "t1"]])
    done = run_snakemake(tmp_path, "--cores", "2", "results/runs/all_fixed/t1/r1/train.json", config=config)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "results" / "runs" / "all_fixed" / "t1" / "r1" / "train.json").is_file()
    audited = reprogrid("audit", "--tracking-uri", store(tmp_path), cwd=tmp_path)
    assert audited.returncode == 1
    assert "VIOLATION [running]" not in audited.stdout  # trained, not yet recorded: not in MLflow at all
    for key in ("all_fixed/t1/r1", "all_fixed/t1/r2"):
        assert f"VIOLATION [missing] {key}: no finished run (no run at all)" in audited.stdout


def test_errors_exit_2_with_one_line(grid, tmp_path):
    unknown = reprogrid("replay", "0123456789abcdef", "--tracking-uri", store(grid), cwd=tmp_path)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "0123456789abcdef" in unknown.stderr
    nowhere = reprogrid("audit", cwd=tmp_path)
    assert nowhere.returncode == 2 and "no MLflow store at results/mlflow.db" in nowhere.stderr
    assert not (tmp_path / "results").exists()  # reading never creates a store
