"""Where a step's time goes: wall seconds spent inside named functions, summed over their
calls, measured by wrapping them in the process that runs the step (a perf_counter pair
per call: microseconds against the seconds measured). Used by scale.py (compare) and
audit_scale.py (audit): `timing(...)` before the step and `seconds()` after it, in the
step's process; `split(...)` in the benchmark's, with the process's wall time."""

from __future__ import annotations

import functools
import importlib
import json
import time
from pathlib import Path

_SPENT: dict[str, float] = {}
_NESTED: list[float] = []  # for each phase running now, outermost first: seconds spent in phases inside it


def timing(phases: dict[str, str]) -> None:
    """Wrap each `module:attribute` (or `module:Class.method`) under its phase name. A
    phase called inside another is counted as itself and taken out of the other: no second
    is counted twice."""
    for name, target in phases.items():
        module_name, _, path = target.partition(":")
        owner = importlib.import_module(module_name)
        *parents, attribute = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
        function = original.__func__ if isinstance(original, classmethod) else original
        wrapped = _timed(name, function)
        setattr(owner, attribute, classmethod(wrapped) if isinstance(original, classmethod) else wrapped)


def _timed(name: str, function):
    _SPENT.setdefault(name, 0.0)

    @functools.wraps(function)
    def timed(*args, **kwargs):
        _NESTED.append(0.0)
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            _SPENT[name] += elapsed - _NESTED.pop()
            if _NESTED:
                _NESTED[-1] += elapsed

    return timed


def seconds() -> dict[str, float]:
    # to 0.1 ms: a phase entered for a few milliseconds on a fast machine must not read 0
    return {name: round(spent, 4) for name, spent in _SPENT.items()}


def split(wall: float, record: Path) -> dict[str, float]:
    """A process's wall time by phase, from the {"phases", "inside"} it recorded: start-up
    is the interpreter's and the imports before its timer began."""
    measured = json.loads(record.read_text())
    spent, inside = measured["phases"], measured["inside"]
    return {"start-up and imports": round(wall - inside, 2)} | spent | {
        "everything else": round(inside - sum(spent.values()), 2)}
