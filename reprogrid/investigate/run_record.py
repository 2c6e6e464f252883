"""A run as the audit sees it (its MLflow tags, params and metrics as plain values), the
audit's report, and which of a key's records counts as its current run."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    def cell(self) -> tuple[str, ...]:
        """(setting, libconf), and the variant in a grid with variants."""
        variant = self.tags.get("reprogrid.variant")
        return (self.tags.get("reprogrid.setting", ""), self.tags.get("reprogrid.libconf", ""),
                *((variant,) if variant else ()))

    @property
    def command(self) -> str | None:
        """A training.command run's command as run (None for reprogrid's own training)."""
        return self.tags.get("reprogrid.command")

    @property
    def hashes_due(self) -> tuple[str, ...]:
        """The hashes its record must hold: a command reads its data itself, so none of data."""
        return tuple(h for h in HASHES if h != "data") if self.command else HASHES

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
    return [f"{'/'.join(cell)}/r{r}" for cell in recorded_cells(grid) for r in range(1, grid["replicates"] + 1)]


def recorded_cells(grid: dict) -> list[tuple[str, ...]]:
    """The cells a recorded grid expects: (setting, libconf), × each variant where it has them."""
    if not grid.get("variants"):
        return [(s, lc) for s, lc in grid["cells"]]
    return [(s, lc, v) for s, lc in grid["cells"] for v in grid["variants"]]


def current_runs(records: list[RunRecord]) -> dict[str, RunRecord]:
    """The run that counts for each key: its finished grid run sealed last. Earlier
    attempts (forced reruns) and replays stay as history."""
    current: dict[str, RunRecord] = {}
    for record in records:
        if record.kind == "run" and record.status == FINISHED:
            if record.key not in current or record.sealed > current[record.key].sealed:
                current[record.key] = record
    return current
