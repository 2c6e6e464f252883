"""Step `evaluate`: evaluate one trained run, seal its outputs and record it in MLflow
(reprogrid.command.dispatch: reprogrid's evaluation, or a command's own outputs)."""

from reprogrid.command.dispatch import run_evaluate

__all__ = ["run_evaluate"]
