"""The seed -> train -> evaluate -> compare code path, called in-process on a real
SQLite MLflow store (what the workflow's scripts call)."""

import csv

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import tiny_config
from reprogrid import config as cfg
from reprogrid.evaluation.evaluate_run import run_evaluate
from reprogrid.record.sealed import IntegrityError, read_json
from reprogrid.steps.compare import run_compare
from reprogrid.steps.seed import run_seed
from reprogrid.steps.setup import prepare_tracking
from reprogrid.training.train_run import run_train


def run_one(root, config, setting, libconf, replicate, evaluate=True):
    run_config = cfg.resolve_run_config(config, setting, libconf, replicate)
    run_dir = root / "results" / "runs" / run_config["run_key"]
    run_dir.mkdir(parents=True)
    run_seed(setting, libconf, replicate, config["root_seed"], run_config["seed_modes"], run_dir / "seeds.json")
    run_train(run_config, run_dir / "seeds.json", run_dir / "model.pt", run_dir / "train.json")
    if evaluate:
        run_evaluate(run_dir / "train.json", run_dir / "model.pt", root / "tracking.json",
                     run_dir / "eval.json", run_dir / "predictions.npz", run_dir / "weights.npy")
    return run_dir


def grid_runs(client):
    experiment = client.get_experiment_by_name("pipeline-test")
    return client.search_runs([experiment.experiment_id], "tags.`reprogrid.kind` = 'run'")


@pytest.fixture
def tracked(tmp_path):
    uri = f"sqlite:///{tmp_path}/results/mlflow.db"
    prepare_tracking(uri, "pipeline-test", tmp_path / "tracking.json")
    return tmp_path, MlflowClient(uri)


def test_vae_runs_report_loss_but_no_accuracy_and_sampling_matters(tracked):
    root, client = tracked
    config = tiny_config(model={"name": "vae", "hidden": [16], "latent": 2, "dropout": 0.0},
                         seed_settings={"sampling": {"sampling": "vary"}}, library_configs={"t1": {}})
    dirs = [run_one(root, config, "sampling", "t1", r) for r in (1, 2)]
    out = root / "results" / "compare"
    out.mkdir(parents=True)
    run_compare(dirs, root / "tracking.json", out / "summary.csv", out / "pairs.csv", out / "report.html")
    row = next(csv.DictReader(open(out / "summary.csv")))
    assert row["test_accuracy_mean"] == "" and row["disagreement_mean"] == ""
    assert float(row["test_loss_mean"]) > 0
    assert row["distinct_weights"] == "2" and row["varied_sources"] == "sampling"
    assert row["per_class_gap_max"] == "" and float(row["weight_distance_mean"]) > 0.0
    assert float(row["best_of_2_gain"]) >= 0.0  # chosen by the lowest test loss
    assert (out / "figures" / "accuracy.png").stat().st_size > 0
    run = client.get_run(read_json(dirs[0] / "eval.json")["mlflow_run_id"])
    assert run.info.status == "FINISHED" and "test_accuracy" not in run.data.metrics
    assert run.data.params["seed_mode.sampling"] == "vary"


def test_a_run_is_recorded_in_mlflow_only_once_its_files_are_sealed(tracked):
    root, client = tracked
    config = tiny_config(library_configs={"t1": {}})
    run_dir = run_one(root, config, "all_fixed", "t1", 1, evaluate=False)
    assert (run_dir / "train.json").is_file() and grid_runs(client) == []  # trained: nothing in MLflow yet
    run_evaluate(run_dir / "train.json", run_dir / "model.pt", root / "tracking.json",
                 run_dir / "eval.json", run_dir / "predictions.npz")
    [run] = grid_runs(client)
    evaluation = read_json(run_dir / "eval.json")
    assert run.info.run_id == evaluation["mlflow_run_id"] and run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] == evaluation["metrics"]["test_accuracy"]
    assert run.data.tags["reprogrid.hash.weights"] == read_json(run_dir / "train.json")["hashes"]["weights"]


def test_evaluate_refuses_a_model_file_that_train_did_not_write(tracked):
    root, client = tracked
    config = tiny_config(library_configs={"t1": {}})
    run_dir = run_one(root, config, "all_fixed", "t1", 1, evaluate=False)
    state = torch.load(run_dir / "model.pt", weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, run_dir / "model.pt")
    with pytest.raises(IntegrityError, match="model.pt: its sha256 is not"):
        run_evaluate(run_dir / "train.json", run_dir / "model.pt", root / "tracking.json",
                     run_dir / "eval.json", run_dir / "predictions.npz")
    assert not (run_dir / "eval.json").exists()
    assert grid_runs(client) == []  # nothing recorded from forged results


def test_unseeded_sources_are_drawn_at_train_time_and_recorded(tracked):
    root, client = tracked
    config = tiny_config(seed_settings={"u": {"order": "unseeded"}}, library_configs={"t1": {}})
    run_dir = run_one(root, config, "u", "t1", 1)
    assert read_json(run_dir / "seeds.json")["seeds"]["order"]["seed"] is None
    record = read_json(run_dir / "train.json")
    params = client.get_run(read_json(run_dir / "eval.json")["mlflow_run_id"]).data.params
    assert params["seed.order"] == str(record["seeds"]["order"])
    assert params["seed_mode.order"] == "unseeded"


def test_the_run_records_the_effective_library_state(tracked):
    root, client = tracked
    config = tiny_config(library_configs={"t2": {"threads": 2, "deterministic_algorithms": True}})
    run_dir = run_one(root, config, "all_fixed", "t2", 1)
    effective = read_json(run_dir / "train.json")["library_effective"]
    assert effective["threads"] == 2 and effective["deterministic_algorithms"] is True
    torch.use_deterministic_algorithms(False)
    assert {p["user_api"] for p in effective["thread_pools"]} >= {"openmp"}  # read from the libraries
    run = client.get_run(read_json(run_dir / "eval.json")["mlflow_run_id"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"run_config.json", "env.json", "library.json", "train.json", "eval.json", "seeds.json"} <= artifacts
    assert run.data.tags["reprogrid.executor"] == "fresh"  # trained in this (pytest's own) process
    assert run.data.tags["reprogrid.hash.library"] == read_json(run_dir / "train.json")["hashes"]["library"]


def test_one_machine_has_one_env_hash_and_each_library_configuration_its_own_library_hash(tracked):
    root, _ = tracked
    config = tiny_config(library_configs={"t1": {}, "t2": {"threads": 2}, "nonp": {"seed_numpy_global": False}})
    hashes = {lc: read_json(run_one(root, config, "all_fixed", lc, 1, evaluate=False) / "train.json")["hashes"]
              for lc in ("t1", "t2", "nonp")}
    assert len({h["env"] for h in hashes.values()}) == 1  # the machine and software only
    assert len({h["library"] for h in hashes.values()}) == 3  # threads, which generators are seeded
