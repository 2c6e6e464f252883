"""Step `compare`: every run of the grid side by side: the tables, figures and report,
logged as one MLflow run tagged reprogrid.kind=compare."""

from __future__ import annotations

import logging
from pathlib import Path

import reprogrid
from reprogrid.record.sealed import read_json, write_atomically

log = logging.getLogger("reprogrid")


def check_against_records(runs: list, records: list[dict]) -> None:
    """Every run's files against the MLflow run that recorded it: its predictions (as
    hashed from predictions.npz), weights hash and metrics (as recomputed) must be what
    the record says. Editing a run's files, even resealing its records, is then not
    enough to change a result: the store would have to be edited too."""
    from reprogrid.record.sealed import IntegrityError

    by_id = {r["run_id"]: r for r in records}
    for run in runs:
        record = by_id.get(run.mlflow_run_id)
        if record is None:
            raise IntegrityError(f"{run.key}: eval.json names MLflow run {run.mlflow_run_id}, which the experiment "
                                 f"does not hold; rerun evaluate (snakemake --forcerun evaluate "
                                 f"results/runs/{run.key}/eval.json)")
        tags, metrics = record["tags"], record["metrics"]
        wrong = [name for name, value in (("predictions", run.predictions), ("weights", run.weights))
                 if tags.get(f"reprogrid.hash.{name}") != value]
        wrong += [name for name in ("test_accuracy", "test_rmse")
                  if name in run.metrics and metrics.get(name) != run.metrics[name]]
        if wrong:
            raise IntegrityError(f"{run.key}: its files disagree with MLflow run {run.mlflow_run_id} on "
                                 f"{', '.join(wrong)}: they were changed after the run was recorded; rerun it "
                                 f"(snakemake --forcerun train results/runs/{run.key}/eval.json)")


def run_compare(run_dirs: list, tracking_path, summary_path, pairs_path, report_path,
                attribution_path=None, libconfs_path=None, figures_dir=None, reference_libconf=None,
                verify_records: bool = True, divergence_path=None, localise: bool = False, power_path=None,
                effect_sizes: dict | None = None, versus_path=None, variants_path=None) -> None:
    """Compare all runs: summary.csv, pairs.csv, attribution.csv, libconfs.csv, the figures
    and report.html; log them as one MLflow run tagged reprogrid.kind=compare. Each run is
    first checked against its MLflow record (`verify_records`). With `localise`, one pair of
    differing runs per cell is localised down to the operation (reprogrid.investigate.diverge):
    divergence.csv, and the cause in the report. power.csv: how many seeds a claim needs
    (`effect_sizes`, per metric); versus.csv: is one cell better than another, beyond seed
    noise; variants.csv: is a variant better than another, beyond seed noise (empty without variants)."""
    import pandas as pd

    from reprogrid.analysis.comparison import compare_runs, write_csv
    from reprogrid.analysis.runs import load_run
    from reprogrid.investigate.diverge import DIVERGENCE_COLUMNS, localise_grid
    from reprogrid.record import mlflow_runs
    from reprogrid.record import mlflow_store as tracking
    from reprogrid.report.figures import write_figures
    from reprogrid.report.render import render_report

    out = Path(summary_path).parent
    attribution_path = attribution_path or out / "attribution.csv"
    libconfs_path = libconfs_path or out / "libconfs.csv"
    figures_dir = Path(figures_dir or out / "figures")
    runs = [load_run(d) for d in run_dirs]
    tracked = read_json(tracking_path)
    client = tracking.client(tracked["tracking_uri"])
    if verify_records:
        check_against_records(runs, mlflow_runs.run_records(client, tracked["experiment_id"]))
    comparison = compare_runs(runs, reference_libconf, effect_sizes)
    divergence_path = divergence_path or out / "divergence.csv"
    power_path = power_path or out / "power.csv"
    versus_path = versus_path or out / "versus.csv"
    variants_path = variants_path or out / "variants.csv"
    rows = localise_grid(runs, {run.key: d for run, d in zip(runs, run_dirs)}, comparison.reference_libconf,
                         out / "diverge") if localise else []
    comparison.divergences = pd.DataFrame(rows, columns=DIVERGENCE_COLUMNS).astype({"epoch": "Int64", "step": "Int64"})
    for frame, path in ((comparison.summary, summary_path), (comparison.pairs, pairs_path),
                        (comparison.attribution, attribution_path), (comparison.libconfs, libconfs_path),
                        (comparison.divergences, divergence_path), (comparison.power, power_path),
                        (comparison.versus, versus_path), (comparison.variants, variants_path)):
        write_csv(frame, path)
    figures = write_figures(comparison, figures_dir)
    html = render_report(f"reprogrid: {tracked['experiment']}", comparison, figures)
    write_atomically(report_path, lambda partial: partial.write_text(html, encoding="utf-8"))
    run_id = mlflow_runs.create_run(
        client, tracked["experiment_id"], "compare",
        {"reprogrid.kind": "compare", "reprogrid.version": reprogrid.__version__},
        tracking.now_ms(),
    )
    mlflow_runs.log_batch(client, run_id, params={"runs": len(runs), "cells": len(comparison.summary),
                                               "reference_libconf": comparison.reference_libconf})
    mlflow_runs.log_artifacts(client, run_id, files=[summary_path, pairs_path, attribution_path, libconfs_path,
                                                  divergence_path, power_path, versus_path, variants_path,
                                                  report_path, *((f"figures/{p.name}", p) for p in figures.values())])
    mlflow_runs.finish_run(client, run_id)
    log.info("compared %d runs in %d cells; MLflow run %s", len(runs), len(comparison.summary), run_id)
