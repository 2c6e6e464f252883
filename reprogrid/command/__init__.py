"""A training.command run: the user's script run as it is, watched from inside
(reprogrid.watch), to the same sealed files and MLflow record as a run of reprogrid's own
training. `dispatch` hands each run's train and evaluate to its kind."""
