"""Where two runs part, from their recorded fingerprints: one definition for compare,
the audit and replay."""

from __future__ import annotations

from collections.abc import Sequence


def first_divergent_epoch(init_a: str, epochs_a: Sequence[str], init_b: str, epochs_b: Sequence[str]) -> int | None:
    """0 if the initial weights differ, else the first epoch (counted from 1) whose
    weight fingerprint differs, the first missing one if one run stopped early; None if
    the two runs never part."""
    if init_a != init_b:
        return 0
    for epoch, (a, b) in enumerate(zip(epochs_a, epochs_b), start=1):
        if a != b:
            return epoch
    if len(epochs_a) != len(epochs_b):
        return min(len(epochs_a), len(epochs_b)) + 1
    return None


def first_divergent_step(steps_a: Sequence[Sequence], steps_b: Sequence[Sequence]) -> int | None:
    """A training.command run's: the first recorded optimizer step ([step, fingerprint];
    step 0, the parameters before the first step) whose fingerprints differ, or the first
    step past the other run's last; None if the two never part. Steps are recorded every
    step at first, then sparser (reprogrid.watch.steps.due), so later divergences are found
    to within the interval since the last recorded step. A step one run's schedule skipped
    (a record made by another version) is no difference."""
    a_at, b_at = dict(steps_a), dict(steps_b)
    both_ran_to = min(max(a_at, default=-1), max(b_at, default=-1))
    for step in sorted(a_at.keys() | b_at.keys()):
        if step in a_at and step in b_at:
            if a_at[step] != b_at[step]:
                return step
        elif step > both_ran_to:
            return step
    return None
