"""Training: one `fit(run)` per run, the built-in loop or the user's own
(`training.factory`), both through `reprogrid.fit.Run`. Pure computation: no files, no
MLflow."""

from __future__ import annotations

import io
import logging
import os
import time
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from reprogrid import rngtrace
from reprogrid.data import Split
from reprogrid.fit import FIT_KEY, FitError, NumericalDivergence, Run
from reprogrid.models import negative_elbo

__all__ = ["NumericalDivergence", "TrainResult", "fit", "train_model"]


class AugmentedBatches(Dataset):
    """Fetched a whole batch of indices at a time (`__getitems__`), so one epoch costs
    one indexing per batch, not one per example.

    Returns (inputs, clean inputs, labels). Pixel noise is drawn from NumPy's *global*
    generator in whichever process fetches the batch, like much third-party
    augmentation code.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, noise_std: float):
        self.features, self.labels, self.noise_std = features, labels, noise_std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices):
        """A whole batch at once (the loader's fetcher prefers this to one item at a time)."""
        index = torch.as_tensor(indices)
        clean = self.features[index]
        if self.noise_std <= 0:
            return clean, clean, self.labels[index]
        noise = torch.from_numpy(np.random.standard_normal(tuple(clean.shape)))
        return clean + self.noise_std * noise.to(clean.dtype), clean, self.labels[index]

    def __getitem__(self, index):
        return tuple(part[0] for part in self.__getitems__([index]))


def _as_batch(batch):
    """The loader's collate step for AugmentedBatches: the batch is already assembled."""
    return batch


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


def make_optimizer(model: torch.nn.Module, training: dict) -> torch.optim.Optimizer:
    name, params = training["optimizer"], model.parameters()
    if name == "sgd":
        return torch.optim.SGD(params, lr=training["lr"], momentum=training["momentum"],
                               weight_decay=training["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(params, lr=training["lr"], weight_decay=training["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=training["lr"], weight_decay=training["weight_decay"])
    raise ValueError(f"unknown optimizer {name!r}")


def make_schedule(optimizer: torch.optim.Optimizer, training: dict):
    """The learning-rate schedule, stepped once per epoch; None for a constant rate."""
    schedule = training.get("lr_schedule", "none")
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, training["step_size"], training["gamma"])
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=training["epochs"])
    return None


def mean_squared_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(outputs.reshape(targets.shape), targets)


def loss_function(training: dict, task: str):
    """loss(outputs, targets) -> the batch's mean loss: cross_entropy, mse, or the user's."""
    name = training.get("loss", "auto")
    if name == "auto":
        name = "cross_entropy" if task == "classification" else "mse"
    if name == "cross_entropy":
        return F.cross_entropy
    if name == "mse":
        return mean_squared_error
    from reprogrid import user

    return user.import_factory(name, "training.loss")


def fit(run: Run) -> torch.nn.Module:
    """The built-in training loop: the config's model, optimizer, schedule and loss, with
    pixel noise from NumPy's global generator (reprogrid.train.AugmentedBatches)."""
    training, split = run.config["training"], run.split
    model = run.model()
    is_vae = run.config["model"].get("name") == "vae"
    sampling = run.torch_generator("sampling") if is_vae else None
    optimizer = make_optimizer(model, training)
    schedule = make_schedule(optimizer, training)
    loss_of = loss_function(training, split.task)
    targets = torch.as_tensor(split.y_train, dtype=run.dtype if split.task == "regression" else None)
    batches = AugmentedBatches(torch.as_tensor(split.x_train, dtype=run.dtype), targets,
                               run.config["augment"]["noise_std"])
    loader = run.loader(batches, training["batch_size"], shuffle=True, collate_fn=_as_batch)
    first = run.resumable(model=model, optimizer=optimizer, scheduler=schedule)
    for epoch in range(first, training["epochs"] + 1):
        model.train()
        loss_sum, seen = 0.0, 0
        for inputs, clean, labels in loader:
            inputs, clean, labels = inputs.to(run.device), clean.to(run.device), labels.to(run.device)
            optimizer.zero_grad(set_to_none=True)
            if is_vae:
                loss = negative_elbo(*model(inputs, sampling), clean)
            else:
                loss = loss_of(model(inputs), labels)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            seen += len(labels)
        if schedule is not None:
            schedule.step()
        run.epoch_end(model, epoch, train_loss=loss_sum / seen)  # last: it may checkpoint the epoch
    return model


def fit_function(training: dict):
    """The run's fit: the user's `training.factory`, or the built-in loop."""
    if "factory" not in training:
        return fit
    from reprogrid import user

    return user.import_factory(training["factory"], FIT_KEY)


def train_model(run_config: dict, seeds: dict, split: Split, checkpoints=None, resume: dict | None = None) -> TrainResult:
    """Train one run with its fit (the library configuration already applied), writing
    checkpoints to `checkpoints` (reprogrid.checkpoint.CheckpointFiles) and resuming from
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
    stream = _LogLines(logging.getLogger("reprogrid.fit"), factory)
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

