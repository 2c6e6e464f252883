"""The workflow's steps: one registry, a module each, in the order data flows.

    setup -> preflight -> seed -> train -> evaluate (+ record) -> compare -> audit

A rule's job runs `scripts/step.py STEP LOG NAME=VALUE ...` (see `reprogrid.step`);
its arguments become keyword arguments of the step's function. Each step lists the
heavy imports it needs (`needs`, loaded in stages by a warm server) and whether it runs
in the job's own process however the workflow is set up (`in_process`: cheaper than
the round trip to a server). Importing this package imports no step.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    module: str  # reprogrid.steps.<module>
    function: str
    needs: frozenset[str]  # import stages: mlflow, torch, analysis (see reprogrid.warm)
    in_process: bool = False


STEPS = {
    "tracking": Step("setup", "prepare_tracking", frozenset({"mlflow"})),
    "preflight": Step("preflight", "run_preflight", frozenset({"torch"})),
    "seed": Step("seed", "run_seed", frozenset(), in_process=True),
    "train": Step("train", "run_train", frozenset({"torch"})),
    "evaluate": Step("evaluate", "run_evaluate", frozenset({"mlflow", "torch"})),
    "compare": Step("compare", "run_compare", frozenset({"mlflow", "analysis"})),
    "audit": Step("audit", "run_audit", frozenset({"mlflow"})),
}


def function(name: str):
    step = STEPS[name]
    return getattr(importlib.import_module(f"reprogrid.steps.{step.module}"), step.function)


def execute(name: str, kwargs: dict, log_path: str) -> None:
    """Run step `name` in this process, logging to `log_path`."""
    from reprogrid.joblog import logged_to

    with logged_to(log_path):
        function(name)(**kwargs)
