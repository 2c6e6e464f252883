"""Audit a grid from its MLflow records alone: is every expected run there, finished and
complete; are the cells predicted bitwise-reproducible actually so; do repeated
attempts at one run agree; did code, environment or data drift inside the experiment.

Works on plain run records (see `reprogrid.record.mlflow_runs.run_records`), so it is tested without a
store; `steps.audit.run_audit` feeds it from MLflow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from reprogrid.config import SOURCES
from reprogrid.config.schema import COMMAND_SOURCES
from reprogrid.investigate.attempts import check_attempts, check_resumes, divergence_epoch
from reprogrid.investigate.run_record import (
    FINISHED,
    RUNNING,
    Report,
    RunRecord,
    current_runs,
    expected_keys,
    recorded_cells,
)
from reprogrid.training.prediction import cell_expects_bitwise

__all__ = ["Report", "RunRecord", "audit", "current_runs"]


def audit(experiment: str, records: list[RunRecord], grid: dict | None,
          fingerprints: Callable[[str], list[str]]) -> Report:
    report = Report(experiment)
    grid_runs = [r for r in records if r.kind in ("run", "replay")]
    current = current_runs(records)
    _check_presence(report, grid_runs, current, expected_keys(grid))
    _check_records(report, grid_runs)
    _check_cells(report, current, grid, fingerprints)
    check_attempts(report, grid_runs, fingerprints)
    check_resumes(report, current, fingerprints)
    _check_drift(report, list(current.values()))
    _check_trace(report, list(current.values()))
    _note_origins(report, list(current.values()))
    report.counts = {
        "runs": sum(r.kind == "run" for r in records),
        "replays": sum(r.kind == "replay" for r in records),
        "current": len(current),
        "expected": len(expected_keys(grid)),
        "running": sum(r.status == RUNNING for r in grid_runs),
        "violations": len(report.violations),
    }
    return report


def _check_presence(report, grid_runs, current, expected):
    if not expected:
        report.notes.append("no grid recorded in this experiment: cannot tell which runs are missing")
    for key in expected:
        if key not in current:
            attempts = [r.status for r in grid_runs if r.key == key and r.kind == "run"]
            how = f"only {', '.join(sorted(set(attempts)))} attempts" if attempts else "no run at all"
            report.violation("missing", f"{key}: no finished run ({how})", key=key)
    extra = sorted(set(current) - set(expected)) if expected else []
    if extra:
        report.notes.append(f"{len(extra)} finished runs are not in the recorded grid (an earlier config?): "
                            + ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else ""))
    for record in grid_runs:
        if record.status == RUNNING:
            report.violation("running", f"{record.key or record.run_id}: MLflow run {record.run_id} "
                             "is still RUNNING (its recorder died while writing it, or is writing it now)",
                             key=record.key, run_id=record.run_id)


def _check_records(report, grid_runs):
    for record in grid_runs:
        if record.status != FINISHED:
            continue
        missing = [f"reprogrid.hash.{h}" for h in record.hashes_due if not record.hash(h)]
        sources = COMMAND_SOURCES if record.command else SOURCES
        missing += [f"seed.{s}" for s in sources if f"seed.{s}" not in record.params]
        if missing:
            report.violation("incomplete", f"{record.key}: MLflow run {record.run_id} lacks "
                             + ", ".join(missing), key=record.key, run_id=record.run_id)


def _groups(records, *hashes) -> dict[tuple, list[RunRecord]]:
    groups = defaultdict(list)
    for record in records:
        groups[tuple(record.hash(h) for h in hashes)].append(record)
    return groups


def _check_cells(report, current, grid, fingerprints):
    cells = defaultdict(list)
    for record in current.values():
        cells[record.cell].append(record)
    order = recorded_cells(grid) if grid else []
    order += sorted(set(cells) - set(order))
    for cell in order:
        runs = sorted(cells.get(cell, []), key=lambda r: int(r.tags.get("reprogrid.replicate", 0)))
        expect = cell_expects_bitwise([r.flag("expect_bitwise") for r in runs])
        groups = _groups(runs, "weights", "predictions")
        row = {
            "setting": cell[0], "libconf": cell[1], **({"variant": cell[2]} if len(cell) > 2 else {}),
            "runs": len(runs),
            "expected": grid["replicates"] if grid else None, "expect_bitwise": expect,
            "distinct_weights": len({r.hash("weights") for r in runs}),
            "distinct_predictions": len({r.hash("predictions") for r in runs}),
        }
        row["verdict"] = _cell_verdict(expect, runs, groups)
        stories = dict.fromkeys(r.tags["reprogrid.seeding"] for r in runs if r.tags.get("reprogrid.seeding"))
        if stories:  # a training.command run's seeding and draws, in words (its MLflow tag)
            row["seeding"] = " | ".join(stories)
        report.cells.append(row)
        if expect and len(groups) > 1:
            reference = max(groups.values(), key=len)[0]
            odd = [r for r in runs if (r.hash("weights"), r.hash("predictions")) !=
                   (reference.hash("weights"), reference.hash("predictions"))]
            details = ", ".join(f"{r.key} (from epoch {divergence_epoch(reference, r, fingerprints)})"
                                for r in odd)
            report.violation("not_bitwise", f"{' × '.join(cell)} was predicted bitwise reproducible, "
                             f"but {details} differ from {reference.key}",
                             cell=list(cell), keys=[r.key for r in odd])


def _cell_verdict(expect, runs, groups) -> str:
    if not runs:
        return "no finished runs"
    if len(runs) < 2:
        return "one run: cannot tell"
    if len(groups) == 1:
        return "bitwise reproducible" + ("" if expect else " (not predicted)")
    return "NOT bitwise reproducible, as predicted" if not expect else "NOT bitwise reproducible: violation"

def _check_drift(report, runs):
    def drift(what, key_of, label):
        for group, members in _grouped(runs, key_of).items():
            values = defaultdict(list)
            for record in members:
                if record.hash(what):  # a missing hash is reported as incomplete, not as drift
                    values[record.hash(what)].append(record.key)
            if len(values) > 1:
                parts = "; ".join(f"{h[:12]}: {', '.join(sorted(keys)[:3])}{' ...' if len(keys) > 3 else ''}"
                                  for h, keys in values.items())
                report.violation("drift", f"{len(values)} different {what} hashes{label(group)}: {parts}",
                                 hash=what)

    # env: the machine and software, the same for every run of one experiment; library:
    # the effective library state, the same for every run of one library configuration
    drift("code", lambda r: "", lambda g: " in one experiment")
    drift("env", lambda r: "", lambda g: " (machines or installs) in one experiment")
    drift("library", lambda r: r.cell[1], lambda g: f" (effective library states) under library configuration {g}")
    drift("data", lambda r: (r.params.get("dataset.name"), r.params.get("dataset.test_fraction"),
                             r.params.get("seed.split"), r.tags.get("reprogrid.variant")),
          lambda g: f" for dataset {g[0]} with split seed {g[2]}")


# the library knob that seeds each global generator for training (reprogrid.training.prediction)
SEEDED_BY = {"python": "lib.seed_python_random", "numpy": "lib.seed_numpy_global"}


def _check_trace(report, runs):
    """A run predicted bitwise whose RNG trace shows it drew, while training, from a
    generator its library configuration leaves unseeded: the prediction cannot hold."""
    for record in runs:
        if not record.flag("expect_bitwise"):
            continue
        drawn = [g for g in record.tags.get("reprogrid.rng.train", "").split(",") if g]
        unseeded = [g for g in drawn if g in SEEDED_BY and record.params.get(SEEDED_BY[g]) == "false"]
        if unseeded:
            report.violation("trace", f"{record.key}: predicted bitwise, but its training drew from "
                             f"{', '.join(unseeded)}, which its library configuration leaves unseeded",
                             key=record.key, run_id=record.run_id)


def _note_origins(report, runs):
    """Name the working directories the current runs were recorded from, and flag a mix:
    two directories logging into one experiment are merged by this audit, which may be
    meant (a shared store) or not (two grids under one experiment name)."""
    origins = _grouped(runs, lambda r: r.tags.get("reprogrid.workdir", "(not recorded)"))
    report.origins = {workdir: len(members) for workdir, members in sorted(origins.items())}
    if len(origins) > 1:
        listed = "; ".join(f"{workdir} ({count} run{'s' if count != 1 else ''})"
                           for workdir, count in report.origins.items())
        report.notes.append(f"MIXED: the current runs were recorded from {len(origins)} working directories, "
                            f"which this audit merges as one grid: {listed}")


def _grouped(runs, key_of):
    groups = defaultdict(list)
    for record in runs:
        groups[key_of(record)].append(record)
    return groups


