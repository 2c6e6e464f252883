"""`run`: the one door between a training loop and reprogrid's randomness and records.

Every run is trained by a `fit(run, **kwargs)` that returns the trained module: the
user's own (`training: {factory: "pkg.module:fit", kwargs: {...}}`) or the built-in
loop (`reprogrid.training.loop.fit`), through the same code. The library configuration is
applied before `fit` runs. `run` gives each source's seed and generators, the model the
config names (built under the `init` stream), a data loader whose order is the `order`
stream and whose workers are seeded from their own stream, the data split, and
`epoch_end`, which records the epoch: weight fingerprint, metrics, and which global
generators the epoch drew from (reprogrid.inputs.rngtrace). `resumable` names what the loop
trains with, so that `epoch_end` can checkpoint it with every generator and a killed or
interrupted run resumes as if it never stopped (reprogrid.training.checkpoint).

Global generators hold the `init` stream while the fit builds and pass to the training
streams at the first sign of training, whatever order the fit builds in
(reprogrid.training.streams). What the run actually drew from is recorded as it happened: the
global generators per phase and epoch, which sources' streams were used
(`sources_used`), and how many loader workers started.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from reprogrid.inputs import randomness, rngtrace
from reprogrid.inputs.data import Split
from reprogrid.inputs.library import torch_device, torch_dtype
from reprogrid.inputs.models import build_model
from reprogrid.record.hashing import weights_digest
from reprogrid.training import checkpoint, contract, states
from reprogrid.training.contract import FitError, NumericalDivergence
from reprogrid.training.resume import Resumable, WatchedLoader
from reprogrid.training.streams import TrainingStart
from reprogrid.training.workers import WorkerReports, WorkerStarts


class Run(Resumable):
    """What `fit(run)` is handed. See the module docstring and README, "Audit your own
    training loop"."""

    def __init__(self, run_config: dict, seeds: dict[str, int], split: Split,
                 checkpoints: checkpoint.CheckpointFiles | None = None, resume: dict | None = None):
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
        self._worker_reports: WorkerReports | None = None  # what run.loader's workers report as they start
        self._training_started = False
        self.training_started_by: str | None = None
        self._seeds_read: set[str] = set()  # sources whose integer seed the fit asked for
        self._initial_states: dict[str, object] = {}  # handed-out generators as handed out
        self.sources_used: list[str] = []  # set by finish: the sources whose streams the run drew from
        # checkpoints: where they go, the one to resume from, what the fit named
        self._checkpoints, self._resume = checkpoints, resume
        self._handed_out: dict[str, object] = {}  # every generator run gave out, by name
        self._state: dict[str, object] | None = None  # what run.resumable was given
        self.resumed_from_epoch: int | None = None
        self.seconds_before = 0.0  # training time of the processes before a resume
        self._started = time.perf_counter()
        self._persistent_workers = False
        self.checkpointing = {"written": 0, "seconds": 0.0, "bytes": 0, "unrestored": [], "unregistered": []}
        randomness.seed_init(seeds)
        self._since = self._setup_since = rngtrace.snapshot()
        self.start = TrainingStart(self._start_training, FitError)  # entered around the fit (train_model)

    # --- seeds and generators -----------------------------------------------------

    def seed(self, source: str) -> int:
        """The integer seed of `source`. Its stream counts as used: what the fit does with
        the number is beyond reprogrid's sight."""
        self._seeds_read.add(source)
        return self._seed_of(source)

    def _seed_of(self, source: str) -> int:
        if source not in self._seeds:
            raise FitError(f"run.seed({source!r}): no such source; sources are {', '.join(self._seeds)}")
        return self._seeds[source]

    def torch_generator(self, source: str) -> torch.Generator:
        seed = self._seed_of(source)
        return self._hand_out(f"torch.{source}", torch.Generator(device=self.device).manual_seed(seed))

    def numpy_generator(self, source: str) -> np.random.Generator:
        return self._hand_out(f"numpy.{source}", np.random.default_rng(self._seed_of(source)))

    def _hand_out(self, name: str, generator):
        """Keep every generator given out, by name, for the checkpoints."""
        if self._state is not None:
            raise FitError(f"run gave out a generator ({name}) after run.resumable; a resumed run could not restore "
                           "it: build loaders and generators before calling run.resumable")
        if generator is not None:
            unique, count = name, 1
            while unique in self._handed_out:
                count += 1
                unique = f"{name}#{count}"
            self._handed_out[unique] = generator
            self._initial_states[unique] = states.generator_state(generator)
            if contract.PROBE is not None:  # so that a random op can be traced to its source
                contract.PROBE.name_generator(generator, unique)
        return generator

    # --- model and data -----------------------------------------------------------

    def model(self) -> torch.nn.Module:
        """The config's model, built under the `init` stream (and nudged by one ULP when
        `ulp` varies), on the run's device and dtype. Called once training has begun, it
        gives the training streams back as they were."""
        training = states.global_states(cuda=self.device.type == "cuda") if self._training_started else {}
        randomness.seed_init(self._seeds)
        started = rngtrace.snapshot()
        with self.start.building():
            built = build_model(self.config["model"], self._split.n_classes, self._split.n_features)
            built = built.to(device=self.device, dtype=self.dtype)
        if self.config["seed_modes"]["ulp"] != "off":
            self.ulp_nudge = randomness.nudge_one_ulp(built, self._seeds["ulp"])
        self.rng["init"] = rngtrace.union([self.rng["init"], rngtrace.advanced(started, rngtrace.snapshot())])
        self.init_weights = weights_digest(built.state_dict())
        for name, state in training.items():
            states.restore_global(name, state)
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
        return tensor_dataset(self._split, features, targets, self.dtype)

    def loader(self, dataset, batch_size: int | None = 1, shuffle: bool = False, **kwargs) -> DataLoader:
        """A DataLoader (with DataLoader's defaults: pass shuffle=True to shuffle) whose
        order is the `order` stream and whose workers (the library configuration's
        `num_workers`) are seeded from their own stream; their starting generator states
        are compared (`worker_duplicates`)."""
        for taken in ("num_workers", "generator"):
            if taken in kwargs:
                raise FitError(f"run.loader(..., {taken}=...): the {taken.replace('_', ' ')} of run.loader come from "
                               "the library configuration and the run's streams (library_configs.<name>.num_workers, "
                               "seed_workers); leave it out")
        workers = self._library["num_workers"]
        if workers > 0:
            self._worker_reports = self._worker_reports or WorkerReports()
            kwargs["worker_init_fn"] = WorkerStarts(kwargs.get("worker_init_fn"), self._worker_reports.queue)
            # workers start afresh each epoch, seeded from the loader's generator: at an
            # epoch's end nothing of theirs is left to checkpoint
            kwargs.setdefault("persistent_workers", False)
            self._persistent_workers |= bool(kwargs["persistent_workers"])
        sampler = kwargs.pop("sampler", None)
        if shuffle and sampler is not None:
            raise FitError("run.loader(..., shuffle=True, sampler=...): a sampler sets the order itself; pass one or "
                           "the other (shuffle=True draws the order from the `order` stream)")
        if shuffle:
            sampler = RandomSampler(dataset, generator=self._hand_out("loader.order",
                                                                      randomness.order_generator(self._seeds)))
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                            generator=self._hand_out("loader.workers",
                                                     randomness.loader_generator(self._seeds, self._library)),
                            **kwargs)
        return loader if contract.PROBE is None and contract.RESUME_CHECK is None else WatchedLoader(loader, self)

    def _start_training(self, why: str = "run.resumable") -> None:
        """Switch the global generators to the training streams, once (reprogrid.training.streams):
        what the build drew is the `init` phase's trace, the epoch-1 trace starts here."""
        if not self._training_started:
            self._training_started, self.training_started_by = True, why
            self.rng["init"] = rngtrace.union([self.rng["init"], rngtrace.advanced(self._setup_since,
                                                                                    rngtrace.snapshot())])
            randomness.seed_training_globals(self._seeds, self._library)
            self._since = rngtrace.snapshot()
            if contract.PROBE is not None:
                contract.PROBE.on_training_start()

    # --- records ------------------------------------------------------------------

    def epoch_end(self, model: torch.nn.Module, epoch: int, **metrics) -> None:
        """Record epoch `epoch` (counted from 1): the weights' fingerprint, the metrics
        given (numbers), and the global generators drawn from since the last epoch."""
        self.start.start("run.epoch_end")
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
        if self._worker_reports is not None:  # none may wait to exit on a full pipe
            self._worker_reports.drain(self._library["num_workers"])
        if contract.PROBE is not None:
            contract.PROBE.on_epoch_end(epoch, record["weights"])
        self._after_epoch(epoch, sys._getframe(1))  # noqa: SLF001 - the fit's frame

    def finish(self, trained) -> None:
        """After `fit` returned `trained`: check what it did against the contract, and
        compare the loader workers' starting states."""
        if not isinstance(trained, torch.nn.Module):
            raise FitError(f"{self.config['training'].get('factory', 'fit')} returned {type(trained).__name__}, "
                           "not the trained torch.nn.Module")
        if not self.epochs:
            raise FitError(f"{self.config['training'].get('factory', 'fit')} never called run.epoch_end; call it "
                           "once per epoch so that every epoch's weights are recorded")
        interrupt = self._library.get("interrupt_after_epoch")
        if self._checkpoints is not None and interrupt and self.resumed_from_epoch is None:
            raise FitError(f"the library configuration interrupts after epoch {interrupt}, but the fit trained "
                           f"{len(self.epochs)} epochs: the run was never interrupted, so its resume is untested "
                           "(set interrupt_after_epoch below the epochs the fit trains)")
        if self._worker_reports is not None:
            self._worker_reports.drain(self._library["num_workers"], final=True)
            self.worker_duplicates = rngtrace.duplicated(self._worker_reports.states)
            self.worker_starts = len(self._worker_reports.states)
        self.sources_used = self._sources_used()

    def _sources_used(self) -> list[str]:
        """The sources whose streams this run drew from, as seen: `init` and `dropout`
        through the global generators they seed (the RNG trace), `augment` through
        NumPy's and Python's where it seeds them and through loader workers that started,
        the rest through the generators run handed out (those whose state moved), and
        any source whose integer seed the fit asked for."""
        used = {"split"} | self._seeds_read
        used |= {"init"} if self.rng["init"] else set()
        used |= {"ulp"} if self.ulp_nudge is not None else set()
        trained = set(rngtrace.union(e["rng"] for e in self.epochs))
        used |= {"dropout"} if trained & {"torch", "cuda"} else set()
        seeded = {g for g, knob in (("numpy", "seed_numpy_global"), ("python", "seed_python_random"))
                  if self._library[knob]}
        used |= {"augment"} if trained & seeded or self.worker_starts else set()
        for name, generator in self._handed_out.items():
            if name == "loader.workers" or states.differing(
                    {name: self._initial_states[name]}, {name: states.generator_state(generator)}) == []:
                continue  # a loader draws its worker seed every epoch: it counts once a worker started
            used.add("order" if name == "loader.order" else name.split(".")[1].split("#")[0])
        return [source for source in self._seeds if source in used]


def tensor_dataset(split: Split, features, targets, dtype: torch.dtype) -> TensorDataset:
    """Features as `dtype`; labels as int64 to classify, targets as `dtype` to regress."""
    regression = split.task == "regression"
    return TensorDataset(torch.as_tensor(features, dtype=dtype), torch.as_tensor(targets, dtype=dtype if regression else None))


