"""One run's evaluation: reprogrid's or the user's, its sealed outputs, and the run's
MLflow record."""
