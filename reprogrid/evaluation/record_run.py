"""Record one run in MLflow from its sealed files: MLflow only records.

Called by step `evaluate` once train.json, model.pt and the predictions are sealed:
the MLflow run is written whole (tags, params, metrics, dataset, artifacts) and ended
in one go, from those files alone. Nothing a job does depends on what it reads back
from MLflow; no MLflow run is open while a model trains.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import reprogrid
from reprogrid.training.prediction import of_record, unused_sources, varied_sources

log = logging.getLogger("reprogrid")


def epoch_series(epochs: list[dict]) -> dict[str, dict[int, float]]:
    """Each metric the fit gave run.epoch_end (train_loss, ...), by epoch; a fit may give none."""
    series: dict[str, dict[int, float]] = {}
    for record in epochs:
        for name, value in record.items():
            if name not in ("epoch", "weights", "rng"):
                series.setdefault(name, {})[record["epoch"]] = value
    return series


def run_params(run_config: dict, seeds: dict[str, int]) -> dict:
    """The MLflow params of a grid run (docs/architecture.md, "MLflow keys")."""
    params = {"root_seed": run_config["root_seed"]}
    sources = run_config["seed_modes"]  # a built-in run's SOURCES, or a training.command run's
    params |= {f"seed.{s}": seeds[s] for s in sources}
    params |= {f"seed_mode.{s}": sources[s] for s in sources}
    params |= {f"lib.{k}": v for k, v in run_config["library"].items()}
    for section in ("dataset", "model", "training", "augment", "evaluation"):  # as resolved: a fit's training is its own
        for key, value in run_config.get(section, {}).items():
            if isinstance(value, dict):  # a factory's kwargs: one param each
                params |= {f"{section}.{key}.{k}": v for k, v in value.items()}
            else:
                params[f"{section}.{key}"] = value
    return params


def run_tags(train: dict, evaluation: dict) -> dict:
    run_config = train["run_config"]
    tags = {
        "reprogrid.kind": train["kind"],
        "reprogrid.run_key": run_config["run_key"],
        "reprogrid.setting": run_config["setting"],
        "reprogrid.libconf": run_config["libconf"],
        "reprogrid.replicate": run_config["replicate"],
        "reprogrid.expect_bitwise": str(train["expect_bitwise"]).lower(),
        "reprogrid.expect_rerun_bitwise": str(train["expect_rerun_bitwise"]).lower(),
        "reprogrid.varied_sources": ",".join(train["varied_sources"] if "command" in train
                                             else varied_sources(run_config, **of_record(train))),
        "reprogrid.version": reprogrid.__version__,
        "reprogrid.executor": train["executor"],
        "reprogrid.task": train["task"],
        "reprogrid.workdir": train["workdir"],
        # MLflow's own: the UI's Source column
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": (train.get("command") or run_config.get("training", {}).get("factory")
                               or "reprogrid built-in loop"),
    }
    if run_config.get("variant"):  # only in a grid with variants
        tags["reprogrid.variant"] = run_config["variant"]
    if "command" in train:  # the command as run, placeholders filled in; what it seeded and drew, in words
        tags["reprogrid.command"] = train["command"]
        if train["seeding_story"]:
            tags["reprogrid.seeding"] = train["seeding_story"]
    if train.get("git_commit"):
        tags["mlflow.source.git.commit"] = train["git_commit"]
    tags |= {f"reprogrid.hash.{k}": v for k, v in (train["hashes"] | evaluation["hashes"]).items()}
    # which global generators each phase drew from (docs/architecture.md: reprogrid.rng.{phase})
    tags |= {f"reprogrid.rng.{phase}": ",".join(drawn)
             for phase, drawn in (train.get("rng", {}) | {"evaluate": evaluation.get("rng", [])}).items()}
    if train.get("worker_duplicates"):
        tags["reprogrid.worker_rng_duplicated"] = ",".join(train["worker_duplicates"])
    if unused_sources(run_config, train.get("sources_used")):  # varied, but the run never drew from its stream
        tags["reprogrid.unused_sources"] = ",".join(unused_sources(run_config, train.get("sources_used")))
    if train.get("library_unreached"):  # knobs that never reached the training
        tags["reprogrid.lib_unreached"] = ",".join(train["library_unreached"])
    if train["library_mismatch"]:
        tags["reprogrid.lib_mismatch"] = json.dumps(train["library_mismatch"])
    if train["determinism_warnings"]:  # warn_only: operations that ran without a deterministic kernel
        tags["reprogrid.determinism_warnings"] = len(train["determinism_warnings"])
    if train.get("resumed_from_epoch") is not None:  # its training went on from a checkpoint
        tags["reprogrid.resumed_from_epoch"] = train["resumed_from_epoch"]
    for problem in ("unregistered", "unrestored"):  # generators kept out of the checkpoints; pieces not restored
        if (train.get("checkpoints") or {}).get(problem):
            tags[f"reprogrid.checkpoint_{problem}"] = ",".join(train["checkpoints"][problem])
    if train["slurm_job_id"]:  # which cluster job trained it
        tags["reprogrid.slurm_job_id"] = train["slurm_job_id"]
    if train.get("data_file"):  # the file as read, beside the hash of what it yielded
        tags |= {"reprogrid.data.file_sha256": train["data_file"]["sha256"],
                 "reprogrid.data.file_size": train["data_file"]["size"]}
    return tags


def record_run(train: dict, evaluation: dict, tracking_path, files: list[str | Path], training_data: tuple,
               extra_tags: dict | None = None) -> str:
    """Write the MLflow run of a trained and evaluated run; return its id. `files` are
    logged as artifacts beside the records; `training_data` (features, targets) is the
    split that train.json's data hash covers, logged as the run's dataset input (None for
    a training.command run, whose data the script reads itself).

    The run exists RUNNING only while it is being written (a fraction of a second).
    A recorder killed in that window leaves it so; the next attempt at the same key
    from this working directory ends it KILLED before writing its own. That attempt
    holds the run's lock (reprogrid.jobs.runlock), which every attempt holds while it works,
    so the writer of a RUNNING record it finds is dead: nothing alive is marked.
    Re-running a run creates a new MLflow run; the older one stays as history.
    """
    from reprogrid.record import mlflow_runs
    from reprogrid.record import mlflow_store as tracking
    from reprogrid.record.sealed import read_json

    tracked = read_json(tracking_path)
    client = tracking.client(tracked["tracking_uri"])
    key = train["run_key"]
    for partial in mlflow_runs.unfinished_records(client, tracked["experiment_id"], train["workdir"], key):
        mlflow_runs.mark_killed(client, partial.info.run_id, "its recording was interrupted (the job died while "
                                                          "writing it); a later attempt recorded the run")
    run_config, seeds = train["run_config"], train["seeds"]
    tags = run_tags(train, evaluation) | (extra_tags or {})
    run_id = mlflow_runs.create_run(client, tracked["experiment_id"], key, tags, train["started_ms"])
    mlflow_runs.log_batch(
        client, run_id,
        params=run_params(run_config, seeds),
        metrics={"train_seconds": train["train_seconds"], **evaluation["metrics"]},
        series=epoch_series(train["epochs"]),
    )
    if training_data is not None:  # a training.command run reads its data itself: none to log
        features, targets = training_data
        mlflow_runs.log_dataset(client, run_id, name=train["dataset_record"]["name"], features=features,
                                targets=targets, sha256=train["hashes"]["data"],
                                source_path=train["dataset_record"]["source_path"])
    mlflow_runs.log_artifacts(client, run_id, {
        "run_config.json": run_config, "env.json": train["env"], "library.json": train["library_effective"],
        "train.json": train, "eval.json": evaluation,
        "seeds.json": {"modes": run_config["seed_modes"], "seeds": seeds},
    }, files=files)
    mlflow_runs.finish_run(client, run_id)
    log.info("recorded %s as MLflow run %s (from %s)", key, run_id, os.getcwd())
    return run_id
