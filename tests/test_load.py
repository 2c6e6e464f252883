"""Many jobs at once against one SQLite store: every run lands exactly once, finished,
with all its params, tags and metrics; no job fails on a locked database."""

import threading
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import run_snakemake, tiny_config
from reprogrid.config import SOURCES

pytestmark = pytest.mark.workflow
HASHES = ("data", "code", "config", "env", "library", "init_weights", "weights", "predictions")
METRICS = ("train_loss", "test_accuracy", "test_loss", "train_seconds", "eval_seconds")


def load_config(experiment, tracking_uri, replicates):
    """Tiny runs (one epoch of a small MLP) so that MLflow writes, not training, dominate."""
    return tiny_config(
        experiment=experiment, tracking_uri=tracking_uri, replicates=replicates,
        model={"name": "mlp", "hidden": [8], "dropout": 0.1},
        training={"epochs": 1, "batch_size": 128, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
        seed_settings={"all_fixed": {}, "init": {"init": "vary"}, "order": {"order": "vary"},
                       "all": {"init": "vary", "order": "vary", "dropout": "vary", "augment": "vary"}},
        library_configs={"a": {}, "b": {"seed_numpy_global": False}},
    )


def assert_every_run_landed_once(uri, experiment, expected):
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], "tags.`reprogrid.kind` = 'run'", max_results=5000)
    keys = sorted(r.info.run_name for r in runs)
    assert keys == sorted(set(keys)) and len(keys) == expected
    for run in runs:
        assert run.info.status == "FINISHED", run.info.run_name
        assert all(f"seed.{s}" in run.data.params and f"seed_mode.{s}" in run.data.params for s in SOURCES)
        assert all(f"reprogrid.hash.{h}" in run.data.tags for h in HASHES), run.info.run_name
        assert all(m in run.data.metrics for m in METRICS), run.info.run_name


def test_96_runs_with_8_cores_on_the_default_sqlite_store(tmp_path):
    config = load_config("load", "sqlite:///results/mlflow.db", replicates=12)  # 4 x 2 x 12 = 96
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    started = time.monotonic()
    done = run_snakemake(tmp_path, "--cores", "8", "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"\nreliability: 96 runs, --cores 8, one SQLite store: {time.monotonic() - started:.1f} s")
    assert "database is locked" not in done.stderr
    assert_every_run_landed_once(f"sqlite:///{tmp_path}/results/mlflow.db", "load", 96)


def test_two_grids_of_different_experiments_share_one_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/shared/mlflow.db"
    (tmp_path / "shared").mkdir()
    outcomes = {}

    def grid(name):
        workdir = tmp_path / name
        workdir.mkdir()
        (workdir / "config.yaml").write_text(yaml.safe_dump(load_config(name, uri, replicates=6)))
        outcomes[name] = run_snakemake(workdir, "--cores", "4", "--configfile", "config.yaml")

    threads = [threading.Thread(target=grid, args=(name,)) for name in ("first", "second")]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"\nreliability: two grids of 48 runs at once, one store: {time.monotonic() - started:.1f} s")
    for name, done in outcomes.items():
        assert done.returncode == 0, (name, done.stderr[-3000:])
        assert_every_run_landed_once(uri, name, 48)
