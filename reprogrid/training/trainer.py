"""Training one run: its `fit(run)` (the user's own, `training.factory`, or the built-in
loop, reprogrid.training.loop), through the one `run` (reprogrid.training.context), with
the switch to the training streams watched (reprogrid.training.streams), what the fit
prints sent to the run's log, and what happened returned. Pure computation: no files, no
MLflow."""

from __future__ import annotations

import io
import logging
import os
import time
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field

import torch

from reprogrid.inputs import rngtrace
from reprogrid.inputs.data import Split
from reprogrid.training.context import Run
from reprogrid.training.contract import FIT_KEY, FitError, NumericalDivergence
from reprogrid.training.loop import fit


@dataclass
class TrainResult:
    model: torch.nn.Module
    init_weights: str
    epochs: list[dict] = field(default_factory=list)  # {"epoch", "weights", "rng", "train_loss", ...}
    train_seconds: float = 0.0
    ulp_nudge: dict | None = None
    rng: dict[str, list[str]] = field(default_factory=dict)  # phase -> global generators drawn
    worker_duplicates: list[str] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    checkpointing: dict = field(default_factory=dict)  # written, seconds, bytes, unrestored, unregistered
    sources_used: list[str] = field(default_factory=list)  # the sources whose streams the run drew from
    loader_workers_started: int = 0  # run.loader's worker processes that started (every epoch's)
    training_started_by: str | None = None  # what switched the global generators to the training streams


def fit_function(training: dict):
    """The run's fit: the user's `training.factory`, or the built-in loop."""
    if "factory" not in training:
        return fit
    from reprogrid.inputs import usercode as user

    return user.import_factory(training["factory"], FIT_KEY)


def train_model(run_config: dict, seeds: dict, split: Split, checkpoints=None, resume: dict | None = None) -> TrainResult:
    """Train one run with its fit (the library configuration already applied), writing
    checkpoints to `checkpoints` (reprogrid.training.checkpoint.CheckpointFiles) and resuming from
    `resume` (a checkpoint's payload) where given."""
    started = time.perf_counter()
    training = run_config["training"]
    run = Run(run_config, seeds, split, checkpoints, resume)
    fit_of = fit_function(training)
    directory = os.getcwd()
    try:
        with run.start, printed_to_log(training.get("factory")):
            trained = fit_of(run, **training.get("kwargs", {}))
    except (FitError, NumericalDivergence):
        raise
    except SystemExit as stop:  # the fit ended the process: say so, instead of a missing output later
        raise FitError(f"{training.get('factory', 'fit')} called exit({stop.code!r}) instead of returning the "
                       "trained model") from None
    except Exception as error:
        if fit_of is fit:
            raise
        raise FitError(f"{training['factory']} raised {type(error).__name__}: {error}") from error
    finally:
        if os.getcwd() != directory:  # the run's files are relative to where it started
            logging.getLogger("reprogrid").warning("%s changed the working directory to %s; back to %s",
                                                   training.get("factory", "fit"), os.getcwd(), directory)
            os.chdir(directory)
    run.finish(trained)
    # a model the fit built itself: its weights as the first optimizer step found them
    init_weights = run.init_weights or run.start.first_step_weights or "unrecorded"
    # a resumed run's time includes its earlier processes' (up to the checkpoint)
    return TrainResult(trained, init_weights, run.epochs, run.seconds_before + time.perf_counter() - started,
                       run.ulp_nudge, run.rng | {"train": rngtrace.union(e["rng"] for e in run.epochs)},
                       run.worker_duplicates, run.resumed_from_epoch, run.checkpointing, run.sources_used,
                       run.worker_starts, run.training_started_by)


@contextmanager
def printed_to_log(factory: str | None):
    """What a user's fit prints goes to the run's log (reprogrid's logger), line by line."""
    if factory is None:
        yield
        return
    stream = _LogLines(logging.getLogger("reprogrid.training.context"), factory)
    try:
        with redirect_stdout(stream), redirect_stderr(stream):
            yield
    finally:
        stream.flush()


class _LogLines(io.TextIOBase):
    def __init__(self, logger, name: str):
        self.logger, self.name, self.pending = logger, name, ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            self.logger.info("[%s] %s", self.name, line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.logger.info("[%s] %s", self.name, self.pending)
            self.pending = ""

