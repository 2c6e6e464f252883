"""Investigations behind the CLI, from the MLflow record: audit, replay, diverge (with the
probe that re-executes a run), resume-check (with its trial)."""
