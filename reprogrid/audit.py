"""Audit a grid from its MLflow records alone: is every expected run there, finished and
complete; are the cells predicted bitwise-reproducible actually so; do repeated
attempts at one run agree; did code, environment or data drift inside the experiment.

Works on plain run records (see `tracking.grid_records`), so it is tested without a
store; `steps.audit.run_audit` feeds it from MLflow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from reprogrid.config import SOURCES
from reprogrid.divergence import first_divergent_epoch
from reprogrid.prediction import cell_expects_bitwise

HASHES = ("data", "code", "config", "env", "library", "init_weights", "weights", "predictions")
FINISHED, RUNNING = "FINISHED", "RUNNING"


@dataclass
class RunRecord:
    run_id: str
    status: str
    start_time: int
    tags: dict
    params: dict
    metrics: dict = field(default_factory=dict)
    end_time: int | None = None  # when the record was sealed (MLflow's end time)

    @property
    def sealed(self) -> tuple[int, int]:
        """When the record was sealed, then when its training began: a rerun evaluate
        records anew a training that began as long ago as the older record's."""
        return self.end_time or self.start_time, self.start_time

    @property
    def kind(self) -> str:
        return self.tags.get("reprogrid.kind", "")

    @property
    def key(self) -> str:
        return self.tags.get("reprogrid.run_key", "")

    @property
    def cell(self) -> tuple[str, str]:
        return self.tags.get("reprogrid.setting", ""), self.tags.get("reprogrid.libconf", "")

    def hash(self, name: str) -> str | None:
        return self.tags.get(f"reprogrid.hash.{name}")

    def flag(self, name: str) -> bool:
        return self.tags.get(f"reprogrid.{name}") == "true"


@dataclass
class Report:
    experiment: str
    cells: list[dict] = field(default_factory=list)
    violations: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    origins: dict = field(default_factory=dict)  # working directory -> current runs recorded from it

    @property
    def ok(self) -> bool:
        return not self.violations

    def violation(self, check: str, message: str, **where) -> None:
        self.violations.append({"check": check, "message": message, **where})

    def as_dict(self) -> dict:
        return {"experiment": self.experiment, "ok": self.ok, "counts": self.counts, "origins": self.origins,
                "cells": self.cells, "violations": self.violations, "notes": self.notes}


def expected_keys(grid: dict | None) -> list[str]:
    if not grid:
        return []
    return [f"{s}/{lc}/r{r}" for s, lc in grid["cells"] for r in range(1, grid["replicates"] + 1)]


def current_runs(records: list[RunRecord]) -> dict[str, RunRecord]:
    """The run that counts for each key: its finished grid run sealed last. Earlier
    attempts (forced reruns) and replays stay as history."""
    current: dict[str, RunRecord] = {}
    for record in records:
        if record.kind == "run" and record.status == FINISHED:
            if record.key not in current or record.sealed > current[record.key].sealed:
                current[record.key] = record
    return current


def divergence_epoch(a: RunRecord, b: RunRecord, fingerprints: Callable[[str], list[str]]) -> int | None:
    """0 when the initial weights already differ, else the first epoch whose weights differ."""
    if a.hash("init_weights") != b.hash("init_weights"):
        return 0
    return first_divergent_epoch("", fingerprints(a.run_id), "", fingerprints(b.run_id))


def audit(experiment: str, records: list[RunRecord], grid: dict | None,
          fingerprints: Callable[[str], list[str]]) -> Report:
    report = Report(experiment)
    grid_runs = [r for r in records if r.kind in ("run", "replay")]
    current = current_runs(records)
    _check_presence(report, grid_runs, current, expected_keys(grid))
    _check_records(report, grid_runs)
    _check_cells(report, current, grid, fingerprints)
    _check_attempts(report, grid_runs, fingerprints)
    _check_resumes(report, current, fingerprints)
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
        missing = [f"reprogrid.hash.{h}" for h in HASHES if not record.hash(h)]
        missing += [f"seed.{s}" for s in SOURCES if f"seed.{s}" not in record.params]
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
    order = [tuple(c) for c in grid["cells"]] if grid else []
    order += sorted(set(cells) - set(order))
    for cell in order:
        runs = sorted(cells.get(cell, []), key=lambda r: int(r.tags.get("reprogrid.replicate", 0)))
        expect = cell_expects_bitwise([r.flag("expect_bitwise") for r in runs])
        groups = _groups(runs, "weights", "predictions")
        row = {
            "setting": cell[0], "libconf": cell[1], "runs": len(runs),
            "expected": grid["replicates"] if grid else None, "expect_bitwise": expect,
            "distinct_weights": len({r.hash("weights") for r in runs}),
            "distinct_predictions": len({r.hash("predictions") for r in runs}),
        }
        row["verdict"] = _cell_verdict(expect, runs, groups)
        report.cells.append(row)
        if expect and len(groups) > 1:
            reference = max(groups.values(), key=len)[0]
            odd = [r for r in runs if (r.hash("weights"), r.hash("predictions")) !=
                   (reference.hash("weights"), reference.hash("predictions"))]
            details = ", ".join(f"{r.key} (from epoch {divergence_epoch(reference, r, fingerprints)})"
                                for r in odd)
            report.violation("not_bitwise", f"{cell[0]} × {cell[1]} was predicted bitwise reproducible, "
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


INPUTS = ("config", "data", "code", "env", "library")  # what makes two attempts the same run


def _check_attempts(report, grid_runs, fingerprints):
    """Attempts at one run key with the same inputs must agree where they are predicted
    to repeat. Attempts with other inputs (the config edited and the run rerun, say) are
    not held to each other: a note names what changed."""
    by_key = defaultdict(list)
    for record in grid_runs:
        if record.status == FINISHED:
            by_key[record.key].append(record)
    for key, attempts in sorted(by_key.items()):
        if len(attempts) < 2:
            continue
        attempts.sort(key=lambda r: r.sealed)
        same_inputs = defaultdict(list)
        for attempt in attempts:
            same_inputs[tuple(attempt.hash(h) for h in INPUTS)].append(attempt)
        if len(same_inputs) > 1:
            changes = "; ".join(filter(None, (input_changes(a, b) for a, b in zip(attempts, attempts[1:]))))
            report.notes.append(f"{key}: {len(attempts)} attempts under {len(same_inputs)} different inputs "
                                f"({changes}): only attempts with the same inputs are held to each other")
        for group in same_inputs.values():
            _check_same_inputs(report, key, group, fingerprints)


def input_changes(a: RunRecord, b: RunRecord) -> str:
    """What differs between two attempts' inputs, in words: the config's keys by name."""
    changed = []
    if a.hash("config") != b.hash("config"):
        keys = sorted(k for k in set(a.params) | set(b.params)
                      if not k.startswith("seed.") and a.params.get(k) != b.params.get(k))
        changed.append("config: " + (", ".join(f"{k} {a.params.get(k)} -> {b.params.get(k)}" for k in keys)
                                     or "its resolved form"))
    changed += [name for name in INPUTS[1:] if a.hash(name) != b.hash(name)]
    return ", ".join(changed)


def _check_same_inputs(report, key, attempts, fingerprints):
    if len(attempts) < 2:
        return
    first = attempts[0]
    differing = [a for a in attempts[1:] if (a.hash("weights"), a.hash("predictions")) !=
                 (first.hash("weights"), first.hash("predictions"))]
    if not differing:
        return
    expected_equal = all(a.flag("expect_rerun_bitwise") for a in attempts)
    details = ", ".join(f"{a.kind} {a.run_id} (from epoch {divergence_epoch(first, a, fingerprints)})"
                        for a in differing)
    message = f"{key}: {len(attempts)} attempts, {details} differ from the first ({first.run_id})"
    if expected_equal:
        report.violation("attempts_disagree", message, key=key, run_ids=[a.run_id for a in attempts])
    else:
        report.notes.append(message + " (as predicted: the run draws from an unseeded source or generator)")


def _check_resumes(report, current, fingerprints):
    """A run its library configuration interrupted and a fresh process resumed must end
    as the same seeds uninterrupted: the run of the same setting and replicate under a
    configuration that differs only in not interrupting (where both are predicted to
    repeat bit for bit). And a resume must have restored every piece of its checkpoint."""
    def interrupt(record) -> str | None:
        return record.params.get("lib.interrupt_after_epoch")

    def twin_key(record) -> tuple:
        library = {k: v for k, v in record.params.items() if k.startswith("lib.") and k != "lib.interrupt_after_epoch"}
        return record.cell[0], record.tags.get("reprogrid.replicate"), tuple(sorted(library.items()))

    uninterrupted = defaultdict(list)
    for record in current.values():
        if interrupt(record) is None:
            uninterrupted[twin_key(record)].append(record)
    unchecked = []
    for record in current.values():
        if record.tags.get("reprogrid.checkpoint_unrestored"):
            report.violation("resume_unrestored", f"{record.key}: resumed from epoch "
                             f"{record.tags.get('reprogrid.resumed_from_epoch')}, but "
                             f"{record.tags['reprogrid.checkpoint_unrestored']} did not come back as checkpointed",
                             key=record.key)
        if interrupt(record) is None:
            continue
        twins = [t for t in uninterrupted[twin_key(record)]
                 if t.flag("expect_rerun_bitwise") and record.flag("expect_rerun_bitwise")]
        if not twins:
            unchecked.append(record.key)
        for twin in twins:
            if (twin.hash("weights"), twin.hash("predictions")) != (record.hash("weights"), record.hash("predictions")):
                epoch = divergence_epoch(twin, record, fingerprints)
                report.violation("resume_differs", f"{record.key}, interrupted after epoch {interrupt(record)} and "
                                 f"resumed, differs from {twin.key}, the same seeds uninterrupted (from epoch {epoch}): "
                                 f"`reprogrid resume-check {record.key} {twin.key}` names the state not restored",
                                 key=record.key, reference=twin.key)
    if unchecked:
        report.notes.append(f"{len(unchecked)} interrupted runs have no uninterrupted run of the same seeds predicted "
                            "to repeat bit for bit, so their resume is not checked: " + ", ".join(sorted(unchecked)[:5])
                            + (" ..." if len(unchecked) > 5 else ""))


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
                             r.params.get("seed.split")),
          lambda g: f" for dataset {g[0]} with split seed {g[2]}")


# the library knob that seeds each global generator for training (reprogrid.prediction)
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


def render(report: Report, tracking_uri: str) -> str:
    """The report as a readable table."""
    lines = [f"reprogrid audit: experiment {report.experiment!r} at {tracking_uri}", ""]
    header = f"{'cell':<34} {'runs':>7} {'expect':>8} {'weights':>8} {'preds':>6}  verdict"
    lines += [header, "-" * len(header)]
    for cell in report.cells:
        runs = f"{cell['runs']}/{cell['expected']}" if cell["expected"] is not None else str(cell["runs"])
        lines.append(f"{cell['setting'] + ' × ' + cell['libconf']:<34} {runs:>7} "
                     f"{'bitwise' if cell['expect_bitwise'] else '-':>8} {cell['distinct_weights']:>8} "
                     f"{cell['distinct_predictions']:>6}  {cell['verdict']}")
    lines.append("")
    if len(report.origins) == 1:
        lines.append(f"recorded from: {next(iter(report.origins))}")
    for note in report.notes:
        lines.append(f"note: {note}")
    for violation in report.violations:
        lines.append(f"VIOLATION [{violation['check']}] {violation['message']}")
    counts = report.counts
    lines.append(f"{counts['current']} current runs of {counts['expected']} expected, {counts['replays']} replays, "
                 f"{counts['running']} running: " + ("OK" if report.ok else f"{len(report.violations)} violations"))
    return "\n".join(lines)
