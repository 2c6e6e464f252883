"""The audit's checks across attempts at one run: repeated attempts with the same inputs
must agree where predicted to, and a resumed run must end as its uninterrupted twin."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from reprogrid.analysis.divergence import first_divergent_epoch
from reprogrid.investigate.run_record import FINISHED, RunRecord


def divergence_epoch(a: RunRecord, b: RunRecord, fingerprints: Callable[[str], list[str]]) -> int | None:
    """0 when the initial weights already differ, else the first epoch whose weights differ."""
    if a.hash("init_weights") != b.hash("init_weights"):
        return 0
    return first_divergent_epoch("", fingerprints(a.run_id), "", fingerprints(b.run_id))


INPUTS = ("config", "data", "code", "env", "library")  # what makes two attempts the same run


def check_attempts(report, grid_runs, fingerprints):
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


def check_resumes(report, current, fingerprints):
    """A run its library configuration interrupted and a fresh process resumed must end
    as the same seeds uninterrupted: the run of the same setting and replicate under a
    configuration that differs only in not interrupting (where both are predicted to
    repeat bit for bit). And a resume must have restored every piece of its checkpoint."""
    def interrupt(record) -> str | None:
        return record.params.get("lib.interrupt_after_epoch")

    def twin_key(record) -> tuple:
        library = {k: v for k, v in record.params.items() if k.startswith("lib.") and k != "lib.interrupt_after_epoch"}
        return record.cell[0], record.tags.get("reprogrid.variant"), record.tags.get("reprogrid.replicate"), \
            tuple(sorted(library.items()))

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
