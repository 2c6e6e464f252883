"""What a fit agrees to, and the hooks an investigation sets: the errors a training
raises (a fit that breaks the contract, a loss that diverges, a planned interruption),
and the two process-wide hooks that `reprogrid diverge` and `reprogrid resume-check` set
in a re-execution of their own (the run reads them; nothing else sets them)."""

from __future__ import annotations

from reprogrid.config import ConfigError

FIT_KEY = "training.factory"
# Set only inside a `reprogrid diverge` re-execution: a reprogrid.watch.probe.Probe
# told of the training's start, of every generator run hands out and of every epoch's end.
PROBE = None
# Set only inside a `reprogrid resume-check` re-execution (reprogrid.investigate.resumecheck):
# what to capture, or which checkpoint to resume from with which pieces replaced.
RESUME_CHECK = None


class FitError(ConfigError):
    """The user's fit broke the contract (wrong return, epochs out of order, ...)."""

    def __init__(self, problem: str):
        super().__init__(FIT_KEY, problem)


class Interrupted(BaseException):  # noqa: N818 - control flow, not an error
    """The library configuration's `interrupt_after_epoch` was reached and its checkpoint
    written: this process stops, a fresh one resumes (a BaseException, so that a loop's
    own `except Exception` does not swallow it)."""

    def __init__(self, epoch: int):
        super().__init__(f"interrupted after epoch {epoch}")
        self.epoch = epoch


class NumericalDivergence(ArithmeticError):
    """The training loss became NaN or infinite: the run failed, it did not train."""
