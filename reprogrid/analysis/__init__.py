"""The grid's numbers, from the runs' sealed files, with NumPy and pandas only (no torch,
no MLflow): runs, cells and pairs, attribution, versus, power, the statistics."""
