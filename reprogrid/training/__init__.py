"""One training: the `run` a fit is handed (context, resume, loader workers), when the
global generators pass to the training streams, the built-in loop, checkpoints, the
prediction, and training one run to its sealed files."""
