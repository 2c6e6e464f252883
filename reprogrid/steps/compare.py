"""Step `compare`: every run of the grid side by side: the tables, figures and report,
logged as one MLflow run tagged reprogrid.kind=compare."""

from __future__ import annotations

import logging
from pathlib import Path

import reprogrid
from reprogrid.records import read_json

log = logging.getLogger("reprogrid")


def run_compare(run_dirs: list, tracking_path, summary_path, pairs_path, report_path,
                attribution_path=None, libconfs_path=None, figures_dir=None, reference_libconf=None) -> None:
    """Compare all runs: summary.csv, pairs.csv, attribution.csv, libconfs.csv, the figures
    and report.html; log them as one MLflow run tagged reprogrid.kind=compare."""
    from reprogrid import tracking
    from reprogrid.compare import compare_runs, load_run, write_csv
    from reprogrid.report import render_report, write_figures

    out = Path(summary_path).parent
    attribution_path = attribution_path or out / "attribution.csv"
    libconfs_path = libconfs_path or out / "libconfs.csv"
    figures_dir = Path(figures_dir or out / "figures")
    runs = [load_run(d) for d in run_dirs]
    comparison = compare_runs(runs, reference_libconf)
    for frame, path in ((comparison.summary, summary_path), (comparison.pairs, pairs_path),
                        (comparison.attribution, attribution_path), (comparison.libconfs, libconfs_path)):
        write_csv(frame, path)
    figures = write_figures(comparison, figures_dir)
    tracked = read_json(tracking_path)
    Path(report_path).write_text(
        render_report(f"reprogrid: {tracked['experiment']}", comparison, figures), encoding="utf-8"
    )
    client = tracking.client(tracked["tracking_uri"])
    run_id = tracking.create_run(
        client, tracked["experiment_id"], "compare",
        {"reprogrid.kind": "compare", "reprogrid.version": reprogrid.__version__},
        tracking.now_ms(),
    )
    tracking.log_batch(client, run_id, params={"runs": len(runs), "cells": len(comparison.summary),
                                               "reference_libconf": comparison.reference_libconf})
    tracking.log_artifacts(client, run_id, files=[summary_path, pairs_path, attribution_path, libconfs_path,
                                                  report_path, *((f"figures/{p.name}", p) for p in figures.values())])
    tracking.finish_run(client, run_id)
    log.info("compared %d runs in %d cells; MLflow run %s", len(runs), len(comparison.summary), run_id)
