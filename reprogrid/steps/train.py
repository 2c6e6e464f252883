"""Step `train`: train one run and seal model.pt and train.json (reprogrid's own training,
or a training.command run as it is: reprogrid.command.dispatch)."""

from reprogrid.command.dispatch import run_train

__all__ = ["run_train"]
