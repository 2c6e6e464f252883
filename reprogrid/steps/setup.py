"""Step `tracking`: create the MLflow store and experiment once, before jobs fan out."""

from __future__ import annotations

import logging
from pathlib import Path

from reprogrid.record.sealed import write_json

log = logging.getLogger("reprogrid")


def prepare_tracking(uri: str, experiment: str, out_path: str | Path, grid: dict | None = None) -> None:
    """Create the store and experiment (concurrent first-time schema creation on SQLite
    races, so it happens here, once), record the grid it expects (for audits), and write
    where runs are recorded to `out_path` for the jobs."""
    from reprogrid.record import mlflow_store as tracking

    experiment_id = tracking.prepare_experiment(uri, experiment)
    if grid is not None:
        tracking.set_grid(tracking.client(uri), experiment_id, grid)
    write_json(out_path, {"tracking_uri": uri, "experiment": experiment, "experiment_id": experiment_id})
    log.info("MLflow experiment %r (id %s) at %s", experiment, experiment_id, uri)
