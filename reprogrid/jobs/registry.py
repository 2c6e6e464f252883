"""The workflow's steps: one registry, a module each, in the order data flows.

    setup -> preflight -> seed -> train -> evaluate (+ record) -> compare -> audit

A rule's job runs `reprogrid/workflow/scripts/step.py STEP LOG NAME=VALUE ...` (see `reprogrid.jobs.runner`);
its arguments become keyword arguments of the step's function. Each step lists the
heavy imports it needs (`needs`: the stages a warm server must have loaded before it
forks the step's child). Importing this module imports no step (and little else: every
job's client imports it).
"""

from __future__ import annotations

import importlib
from collections import namedtuple

# module: reprogrid.steps.<module>; needs: import stages (mlflow, torch, analysis; see
# reprogrid.jobs.warm_server)
Step = namedtuple("Step", "module function needs")

STEPS = {
    "tracking": Step("setup", "prepare_tracking", frozenset({"mlflow"})),
    "preflight": Step("preflight", "run_preflight", frozenset({"torch"})),
    # NumPy only, but a fresh process spends 0.15 CPU-s importing it: cheaper forked
    "seed": Step("seed", "run_seed", frozenset()),
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
    from reprogrid.jobs.joblog import logged_to

    with logged_to(log_path):
        function(name)(**kwargs)
