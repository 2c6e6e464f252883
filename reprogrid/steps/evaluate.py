"""Step `evaluate`: evaluate one trained run, seal its outputs and record it in MLflow
(reprogrid.evaluation.evaluate_run)."""

from reprogrid.evaluation.evaluate_run import run_evaluate

__all__ = ["run_evaluate"]
