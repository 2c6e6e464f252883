"""A run's record in MLflow, written whole (params, tags, metrics, dataset, artifacts) and
read back (for the audit, replay, diverge). With reprogrid.record.mlflow_store, the only
code that talks to MLflow."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from reprogrid.record.mlflow_store import _reading, now_ms, retrying

# MLflow caps one log_batch call at these sizes.
MAX_PARAMS, MAX_TAGS, MAX_METRICS = 100, 100, 1000
# MLflow caps a dataset digest at 36 characters; the full sha256 goes into an input tag.
MAX_DATASET_DIGEST = 36


SEARCH_PAGE = 10000


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def log_batch(mlflow_client, run_id: str, *, params=None, tags=None, metrics=None, series=None):
    """Log params, tags, scalar metrics and per-step series in as few calls as allowed.

    `series` maps a metric name to {step: value}.
    """
    from mlflow.entities import Metric, Param, RunTag

    stamp = now_ms()
    param_list = [Param(k, _param_value(v)) for k, v in (params or {}).items()]
    tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    metric_list = [Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items()]
    for name, values in (series or {}).items():
        metric_list += [Metric(name, float(v), stamp, step) for step, v in values.items()]
    while param_list or tag_list or metric_list:
        retrying(
            mlflow_client.log_batch,
            run_id,
            params=param_list[:MAX_PARAMS],
            tags=tag_list[:MAX_TAGS],
            metrics=metric_list[:MAX_METRICS],
        )
        param_list = param_list[MAX_PARAMS:]
        tag_list = tag_list[MAX_TAGS:]
        metric_list = metric_list[MAX_METRICS:]


def _param_value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def create_run(mlflow_client, experiment_id: str, run_name: str, tags: dict, start_ms: int) -> str:
    run = retrying(
        mlflow_client.create_run,
        experiment_id, start_time=start_ms, tags={k: str(v) for k, v in tags.items()},
        run_name=run_name,
    )
    return run.info.run_id


def log_dataset(mlflow_client, run_id: str, *, name: str, features: np.ndarray,
                targets: np.ndarray, sha256: str, source_path: str | None) -> None:
    """Log the training data as an MLflow dataset input whose digest is our sha256
    (cut to MLflow's 36-character limit; the full digest is the input's tag)."""
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    source = source_path if source_path else CodeDatasetSource(tags={"generator": name})
    with warnings.catch_warnings():  # a local path matches two equivalent source types
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_numpy(
            features, targets=targets, name=name, digest=sha256[:MAX_DATASET_DIGEST], source=source
        )
    tags = [InputTag("mlflow.data.context", "training"), InputTag("reprogrid.hash.data", sha256)]
    retrying(mlflow_client.log_inputs, run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags)])


def log_artifacts(mlflow_client, run_id: str, documents: dict[str, dict] | None = None,
                  files: Iterable[str | Path | tuple[str, str | Path]] = ()) -> None:
    """Log JSON documents (by artifact name) and files as the run's artifacts, in one call.
    A file given as (artifact path, path) lands at that artifact path, e.g. in a folder."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="reprogrid-artifacts-") as staging:
        for name, document in (documents or {}).items():
            Path(staging, name).write_text(json.dumps(document, indent=1, sort_keys=True))
        for item in files:
            name, path = item if isinstance(item, tuple) else (Path(item).name, item)
            Path(staging, name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, Path(staging, name))
        retrying(mlflow_client.log_artifacts, run_id, staging)


def finish_run(mlflow_client, run_id: str) -> None:
    retrying(mlflow_client.set_terminated, run_id, status="FINISHED", end_time=now_ms())


def run_records(mlflow_client, experiment_id: str) -> list[dict]:
    """Every run of the experiment as plain data: run_id, status, start_time, end_time (when
    its record was sealed), tags, params, metrics (each one's latest value)."""
    records, token = [], None
    with _reading(f"runs of experiment {experiment_id}"):
        while True:
            page = mlflow_client.search_runs([experiment_id], max_results=SEARCH_PAGE, page_token=token)
            records += [{"run_id": r.info.run_id, "status": r.info.status, "start_time": r.info.start_time,
                         "end_time": r.info.end_time,
                         "tags": r.data.tags, "params": r.data.params, "metrics": r.data.metrics} for r in page]
            token = page.token
            if not token:
                return records


def run_summary(mlflow_client, run_id: str) -> dict:
    with _reading(f"MLflow run {run_id}"):
        run = mlflow_client.get_run(run_id)
        experiment = mlflow_client.get_experiment(run.info.experiment_id)
    return {"run_id": run_id, "status": run.info.status, "experiment_id": run.info.experiment_id,
            "experiment": experiment.name, "tags": run.data.tags, "params": run.data.params}


def load_json_artifact(mlflow_client, run_id: str, name: str) -> dict:

    with _reading(f"artifact {name} of MLflow run {run_id}"), \
            tempfile.TemporaryDirectory(prefix="reprogrid-artifact-") as scratch:
        path = mlflow_client.download_artifacts(run_id, name, scratch)
        return json.loads(Path(path).read_text())


def unfinished_records(mlflow_client, experiment_id: str, workdir: str, key: str) -> list:
    """Grid runs of `key` recorded from `workdir` that are still RUNNING: a run is
    RUNNING only while its recorder writes it, so these recorders died mid-write."""
    query = (f"attributes.status = 'RUNNING' and tags.`reprogrid.kind` = 'run' "
             f"and tags.`reprogrid.workdir` = '{_quoted(workdir)}' and tags.`reprogrid.run_key` = '{_quoted(key)}'")
    with _reading(f"running runs of experiment {experiment_id}"):
        return list(mlflow_client.search_runs([experiment_id], query, max_results=SEARCH_PAGE))


def open_before_fork(uri: str, experiment_id: str) -> None:
    """Open the store at `uri` in a process about to fork recorders (the warm server), so
    that no recording job opens it again: MLflow keeps one store object per URI (its engine,
    its schema check) and SQLAlchemy the statements it has compiled, and a forked child
    inherits both. Every connection opened here is closed before returning: a database
    connection must not cross a fork. A server store is left alone (its HTTP session would
    cross the fork, and opening it costs nothing)."""
    if uri.startswith(("http://", "https://")):
        return
    from reprogrid.record.mlflow_store import client

    mlflow_client = client(uri)
    try:  # the search every recording runs first: compiled here once
        unfinished_records(mlflow_client, experiment_id, "", "")
    finally:
        engine = getattr(mlflow_client._tracking_client.store, "engine", None)
        if engine is not None:
            engine.dispose()


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def mark_killed(mlflow_client, run_id: str, reason: str) -> None:
    """End a run whose recorder died: KILLED, with the reason as tag `reprogrid.killed_reason`."""
    set_tags(mlflow_client, run_id, {"reprogrid.killed_reason": reason})
    retrying(mlflow_client.set_terminated, run_id, status="KILLED", end_time=now_ms())


def set_tags(mlflow_client, run_id: str, tags: dict) -> None:
    log_batch(mlflow_client, run_id, tags=tags)
