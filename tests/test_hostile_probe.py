"""What a hostile probe of round 2 found (issue 26), each case run for real: a store left
half-created, one from a newer MLflow, a config edited and rerun, a project copied to
another directory. (The others: test_bad_input, test_checkpoint, test_warm,
test_tracking, test_own_fit, test_own_code; docs/reliability.md lists them all.)"""

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import grid_runs, run_snakemake, tiny_config

pytestmark = pytest.mark.workflow
REPROGRID = Path(sys.executable).with_name("reprogrid")


def reprogrid(workdir: Path, *args: str):
    return subprocess.run([str(REPROGRID), *args], cwd=workdir, capture_output=True, text=True, timeout=300)


def files_under(directory: Path) -> dict:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def half_created_store(workdir: Path) -> Path:
    """A store as a first run killed mid-migration leaves it: some tables, an earlier
    schema revision, no runs."""
    from reprogrid.record import mlflow_store as tracking

    db = workdir / "results" / "mlflow.db"
    tracking.prepare_experiment(f"sqlite:///{db}", "half")
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0584bdc529eb'")
        connection.execute("DROP TABLE datasets")
    return db


def test_a_store_left_half_created_is_named_to_a_reader_and_set_aside_by_the_next_grid(tmp_path):
    db = half_created_store(tmp_path)
    audit = reprogrid(tmp_path, "audit")
    assert audit.returncode == 2 and len(audit.stderr.strip().splitlines()) == 1, audit.stderr
    assert "the MLflow store results/mlflow.db was left half-created" in audit.stderr and "holds no runs" in audit.stderr
    config = tiny_config(seed_settings={"all_fixed": {}}, library_configs={"t1": {"threads": 1}}, replicates=1)
    done = run_snakemake(tmp_path, "--cores", "2", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(db.parent.glob("mlflow.db.half-created-*"))) >= 1  # kept, not deleted
    assert reprogrid(tmp_path, "audit").returncode == 0


def test_a_store_from_a_newer_mlflow_is_refused_in_one_line(tmp_path):
    db = half_created_store(tmp_path)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    audit = reprogrid(tmp_path, "audit")
    assert audit.returncode == 2 and len(audit.stderr.strip().splitlines()) == 1, audit.stderr
    assert "was written by a newer MLflow (schema revision ffffffffffff" in audit.stderr
    done = run_snakemake(tmp_path, "--cores", "2", config=tiny_config())
    assert done.returncode != 0 and "was written by a newer MLflow" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def copied(grid, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(grid, workdir)
    return workdir


def test_a_config_edited_and_rerun_is_not_reported_as_nondeterminism(copied):
    before = {r.data.tags["reprogrid.run_key"]: r for r in grid_runs(copied)}
    config = yaml.safe_load((copied / "config.yaml").read_text())
    config["training"]["lr"] = 0.1
    (copied / "config.yaml").write_text(yaml.safe_dump(config))
    done = run_snakemake(copied, "--cores", "2", "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    audit = reprogrid(copied, "audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "attempts under 2 different inputs (config: training.lr 0.05 -> 0.1)" in audit.stdout
    after = {r.data.tags["reprogrid.run_key"]: r for r in grid_runs(copied) if r.info.run_id not in
             {b.info.run_id for b in before.values()}}
    found_path = copied / "diverge.json"
    done = reprogrid(copied, "diverge", before["all_fixed/t1/r1"].info.run_id, after["all_fixed/t1/r1"].info.run_id,
                     "--json", str(found_path))
    found = json.loads(found_path.read_text())
    assert done.returncode == 1 and found["cause"] is None
    assert found["detail"].startswith("config differs: training.lr (0.05 against 0.1)")


def test_a_copied_project_writes_only_into_itself(grid, copied):
    original = files_under(grid / "results" / "mlartifacts")
    done = run_snakemake(copied, "--cores", "2", "--configfile", "config.yaml", "--forcerun", "evaluate",
                         "results/runs/all_fixed/t1/r1/eval.json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_under(grid / "results" / "mlartifacts") == original  # the original is untouched
    newest = max(grid_runs(copied, "all_fixed/t1/r1"), key=lambda r: r.info.start_time or 0)
    assert newest.info.artifact_uri.startswith((copied / "results" / "mlartifacts").as_uri())
    replay = reprogrid(copied, "replay", newest.info.run_id)
    assert replay.returncode == 0 and "verdict: bitwise" in replay.stdout, replay.stdout + replay.stderr


def test_every_case_docs_reliability_names_is_a_test_that_exists():
    import re

    from conftest import REPO

    text = (REPO / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", text)
    assert len(named) >= 10
    for file, test in named:
        assert f"def {test}(" in (REPO / "tests" / file).read_text(), (file, test)
