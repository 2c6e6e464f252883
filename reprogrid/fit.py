"""`run`: the one door between a training loop and reprogrid's randomness and records.

Every run is trained by a `fit(run, **kwargs)` that returns the trained module: the
user's own (`training: {factory: "pkg.module:fit", kwargs: {...}}`) or the built-in
loop (`reprogrid.train.fit`), through the same code. The library configuration is
applied before `fit` runs. `run` gives each source's seed and generators, the model the
config names (built under the `init` stream), a data loader whose order is the `order`
stream and whose workers are seeded from their own stream, the data split, and
`epoch_end`, which records the epoch: weight fingerprint, metrics, and which global
generators the epoch drew from (reprogrid.rngtrace).

Global generators: before `fit` runs they hold the `init` stream (a model built in
`fit` is governed by it). `run.model()` reseeds them with it, builds, then switches
them to the training streams (torch's to `dropout`; NumPy's and Python's to `augment`
where the library configuration seeds them, else to OS entropy); so does the first
`run.loader()` of a `fit` that builds its own model.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from reprogrid import randomness, rngtrace
from reprogrid.config import ConfigError
from reprogrid.data import Split
from reprogrid.hashing import weights_digest
from reprogrid.library import torch_device, torch_dtype
from reprogrid.models import build_model

FIT_KEY = "training.factory"
# Set only inside a `reprogrid diverge` re-execution: a reprogrid.probe.Probe told of
# every batch the run's loaders hand out and of every epoch's end.
PROBE = None


class FitError(ConfigError):
    """The user's fit broke the contract (wrong return, epochs out of order, ...)."""

    def __init__(self, problem: str):
        super().__init__(FIT_KEY, problem)


class _WorkerStarts:
    """A loader's worker_init_fn: runs the user's own, then reports the worker's starting
    generator states (after everything that seeds them) to the training process."""

    def __init__(self, user_init, reports):
        self.user_init, self.reports = user_init, reports

    def __call__(self, worker_id: int) -> None:
        if self.user_init is not None:
            self.user_init(worker_id)
        self.reports.put(rngtrace.snapshot())


class _ProbedLoader:
    """A loader that tells the probe of every batch it hands out (reprogrid.probe)."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def __iter__(self):
        for batch in self.loader:
            PROBE.on_batch(batch)
            yield batch

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class Run:
    """What `fit(run)` is handed. See the module docstring and README, "Audit your own
    training loop"."""

    def __init__(self, run_config: dict, seeds: dict[str, int], split: Split):
        self.config = run_config
        self._seeds, self._split = seeds, split
        self._library = run_config["library"]
        self.device = torch_device(self._library)
        self.dtype = torch_dtype(self._library)
        self.epochs: list[dict] = []  # {"epoch", "weights", "rng", "train_loss"?, ...}
        self.init_weights: str | None = None
        self.ulp_nudge: dict | None = None
        self.rng: dict[str, list[str]] = {"split": list(split.drawn), "init": []}
        self.worker_duplicates: list[str] = []  # generators loader workers started from in one state
        self.worker_starts = 0
        self._worker_reports = None
        self._training_started = False
        randomness.seed_init(seeds)
        self._since = rngtrace.snapshot()

    # --- seeds and generators -----------------------------------------------------

    def seed(self, source: str) -> int:
        if source not in self._seeds:
            raise FitError(f"run.seed({source!r}): no such source; sources are {', '.join(self._seeds)}")
        return self._seeds[source]

    def torch_generator(self, source: str) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed(source))

    def numpy_generator(self, source: str) -> np.random.Generator:
        return np.random.default_rng(self.seed(source))

    # --- model and data -----------------------------------------------------------

    def model(self) -> torch.nn.Module:
        """The config's model, built under the `init` stream (and nudged by one ULP when
        `ulp` varies), on the run's device and dtype."""
        randomness.seed_init(self._seeds)
        started = rngtrace.snapshot()
        built = build_model(self.config["model"], self._split.n_classes, self._split.n_features)
        built = built.to(device=self.device, dtype=self.dtype)
        if self.config["seed_modes"]["ulp"] != "off":
            self.ulp_nudge = randomness.nudge_one_ulp(built, self._seeds["ulp"])
        self.rng["init"] = rngtrace.advanced(started, rngtrace.snapshot())
        self.init_weights = weights_digest(built.state_dict())
        self._start_training()
        return built

    @property
    def split(self) -> Split:
        """The split as NumPy arrays (x_train, y_train, x_test, y_test, task, ...)."""
        return self._split

    @property
    def train_data(self) -> TensorDataset:
        return self._dataset(self._split.x_train, self._split.y_train)

    @property
    def test_data(self) -> TensorDataset:
        return self._dataset(self._split.x_test, self._split.y_test)

    def _dataset(self, features, targets) -> TensorDataset:
        regression = self._split.task == "regression"
        return TensorDataset(torch.as_tensor(features, dtype=self.dtype),
                             torch.as_tensor(targets, dtype=self.dtype if regression else None))

    def loader(self, dataset, batch_size: int, shuffle: bool = True, **kwargs) -> DataLoader:
        """A DataLoader whose order is the `order` stream and whose workers (the library
        configuration's `num_workers`) are seeded from their own stream; their starting
        generator states are compared (`worker_duplicates`)."""
        self._start_training()
        workers = self._library["num_workers"]
        if workers > 0:
            self._worker_reports = self._worker_reports or multiprocessing.get_context().Queue()
            kwargs["worker_init_fn"] = _WorkerStarts(kwargs.get("worker_init_fn"), self._worker_reports)
            kwargs.setdefault("persistent_workers", True)
        sampler = RandomSampler(dataset, generator=randomness.order_generator(self._seeds)) if shuffle else None
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                            generator=randomness.loader_generator(self._seeds, self._library), **kwargs)
        return loader if PROBE is None else _ProbedLoader(loader)

    def _start_training(self) -> None:
        """Switch the global generators to the training streams, once."""
        if not self._training_started:
            self._training_started = True
            randomness.seed_training_globals(self._seeds, self._library)
            self._since = rngtrace.snapshot()

    # --- records ------------------------------------------------------------------

    def epoch_end(self, model: torch.nn.Module, epoch: int, **metrics) -> None:
        """Record epoch `epoch` (counted from 1): the weights' fingerprint, the metrics
        given (numbers), and the global generators drawn from since the last epoch."""
        if epoch != len(self.epochs) + 1:
            raise FitError(f"run.epoch_end was called for epoch {epoch} after "
                           f"{len(self.epochs)} epochs; call it once per epoch, counting from 1")
        if not isinstance(model, torch.nn.Module):
            raise FitError(f"run.epoch_end was given {type(model).__name__}, not the torch.nn.Module being trained")
        now = rngtrace.snapshot()
        record = {"epoch": epoch, "weights": weights_digest(model.state_dict()),
                  "rng": rngtrace.advanced(self._since, now)}
        for name, value in metrics.items():
            value = float(value)
            if not math.isfinite(value):
                raise NumericalDivergence(f"run {self.config['run_key']}: {name} became {value} in epoch {epoch}; "
                                          "the run diverged numerically (a smaller learning rate may help)")
            record[name] = value
        self.epochs.append(record)
        self._since = now
        if PROBE is not None:
            PROBE.on_epoch_end(epoch)

    def finish(self, trained) -> None:
        """After `fit` returned `trained`: check what it did against the contract, and
        compare the loader workers' starting states."""
        if not isinstance(trained, torch.nn.Module):
            raise FitError(f"{self.config['training'].get('factory', 'fit')} returned {type(trained).__name__}, "
                           "not the trained torch.nn.Module")
        if not self.epochs:
            raise FitError(f"{self.config['training'].get('factory', 'fit')} never called run.epoch_end; call it "
                           "once per epoch so that every epoch's weights are recorded")
        if self._worker_reports is not None:
            starts, deadline = [], time.monotonic() + 2  # reports are in flight from worker start
            while time.monotonic() < deadline:
                try:
                    starts.append(self._worker_reports.get(timeout=0.05))
                except queue.Empty:
                    if len(starts) >= self._library["num_workers"]:
                        break
            self.worker_duplicates = rngtrace.duplicated(starts)
            self.worker_starts = len(starts)


class NumericalDivergence(ArithmeticError):
    """The training loss became NaN or infinite: the run failed, it did not train."""
