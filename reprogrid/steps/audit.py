"""Step `audit`: audit an experiment from its MLflow records alone (`reprogrid audit`)."""

from __future__ import annotations

import logging

from reprogrid.record.sealed import write_json

log = logging.getLogger("reprogrid")


def run_audit(tracking_uri: str, experiment: str | None = None, json_path=None):
    """Audit an experiment from its MLflow records alone; write the report as JSON."""
    from reprogrid.investigate import grid_audit as audit
    from reprogrid.record import mlflow_runs
    from reprogrid.record import mlflow_store as tracking

    client = tracking.existing_store_client(tracking_uri)
    experiment_id, name, grid = tracking.find_experiment(client, experiment)
    records = [audit.RunRecord(**r) for r in mlflow_runs.run_records(client, experiment_id)]

    def fingerprints(run_id: str) -> list[str]:
        return [e["weights"] for e in mlflow_runs.load_json_artifact(client, run_id, "train.json")["epochs"]]

    report = audit.audit(name, records, grid, fingerprints)
    if json_path:
        write_json(json_path, report.as_dict() | {"tracking_uri": tracking_uri})
    log.info("audit of %r: %s", name, "OK" if report.ok else f"{len(report.violations)} violations")
    return report
