"""Recording: hashes, sealed files, the environment record, the code a run ran, and the one
place that talks to MLflow (mlflow_store, mlflow_runs) with its SQLite store. Imports
config only (docs/architecture.md)."""
