"""Step `train`: train one run and seal model.pt and train.json (reprogrid.training.train_run)."""

from reprogrid.training.train_run import run_train

__all__ = ["run_train"]
