"""The few lines a grid ends with, after Snakemake's log: the cells against their
prediction, the audit's verdict, where the report is, how to open the MLflow UI on this
store. Read from the files this invocation wrote (summary.csv, audit.json,
tracking.json); runs in Snakemake's process, so it imports neither pandas nor MLflow."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

SUMMARY = Path("results/compare/summary.csv")
AUDIT = Path("results/audit.json")
REPORT = Path("results/compare/report.html")
TRACKING = Path("results/tracking.json")


def _outcomes(rows: list[dict]) -> tuple[int, int, list[str], list[str], list[str]]:
    """(bitwise as predicted, differing as predicted, violated, identical though a source
    varies, one run) over the cells of summary.csv."""
    bitwise = differ = 0
    violated, unexpected_same, single = [], [], []
    for row in rows:
        name = f"{row['setting']} × {row['libconf']}"
        observed, expected = row["bitwise_reproducible"], row["expect_bitwise"] == "true"
        if observed == "":
            single.append(name)
        elif observed == "true":
            bitwise += expected
            if not expected:
                unexpected_same.append(name)
        elif expected:
            violated.append(name)
        else:
            differ += 1
    return bitwise, differ, violated, unexpected_same, single


def _named(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def ui_command(uri: str, experiment_id: str | None) -> str:
    """How to look at this store in the MLflow UI: a server's own address, else `mlflow ui` on it."""
    # the workflow type: MLflow 3.17's UI opens an experiment on the view the browser last
    # chose (GenAI, traces, for a new one) whatever the experiment's kind; this opens its runs
    page = f"/#/experiments/{experiment_id}?workflowType=machine_learning" if experiment_id else ""
    if uri.startswith(("http://", "https://")):
        return f"open {uri.rstrip('/')}{page}"
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)}, then open http://127.0.0.1:5000{page}"


def closing_lines(since: float) -> list[str]:
    """The summary, if this invocation (started at `since`, a time.time()) compared and
    audited the grid; nothing after a run rerun alone, which touches neither."""
    if not all(path.is_file() and path.stat().st_mtime >= since for path in (SUMMARY, AUDIT)):
        return []
    with SUMMARY.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    audit = json.loads(AUDIT.read_text())
    tracking = json.loads(TRACKING.read_text()) if TRACKING.is_file() else {}
    runs = sum(int(row["runs"]) for row in rows)
    bitwise, differ, violated, unexpected_same, single = _outcomes(rows)
    lines = [f"reprogrid: {len(rows)} cells, {runs} runs, in MLflow experiment {audit['experiment']!r}",
             f"  as predicted: {bitwise} bitwise reproducible, {differ} differing between replicates"]
    if violated:
        lines.append(f"  AGAINST the prediction, not reproducible: {_named(violated)}")
    if unexpected_same:
        lines.append(f"  identical although a source varies (it never reaches the weights): {_named(unexpected_same)}")
    if single:
        lines.append(f"  one run, cannot tell: {_named(single)}")
    violations = audit.get("violations", [])
    lines.append("  audit: OK" if audit.get("ok") else
                 f"  audit: {len(violations)} violation{'s' if len(violations) != 1 else ''} ({AUDIT}; "
                 "`reprogrid audit` says which)")
    lines.append(f"  report: {REPORT}")
    uri = tracking.get("tracking_uri") or audit.get("tracking_uri")
    if uri:
        lines.append(f"  MLflow UI: {ui_command(uri, tracking.get('experiment_id'))}")
    return lines
