"""`run`: the one door between a training loop and reprogrid's randomness and records.

Every run is trained by a `fit(run, **kwargs)` that returns the trained module: the
user's own (`training: {factory: "pkg.module:fit", kwargs: {...}}`) or the built-in
loop (`reprogrid.train.fit`), through the same code. The library configuration is
applied before `fit` runs. `run` gives each source's seed and generators, the model the
config names (built under the `init` stream), a data loader whose order is the `order`
stream and whose workers are seeded from their own stream, the data split, and
`epoch_end`, which records the epoch: weight fingerprint, metrics, and which global
generators the epoch drew from (reprogrid.rngtrace). `resumable` names what the loop
trains with, so that `epoch_end` can checkpoint it with every generator and a killed or
interrupted run resumes as if it never stopped (reprogrid.checkpoint).

Global generators hold the `init` stream while the fit builds and pass to the training
streams at the first sign of training, whatever order the fit builds in
(reprogrid.streams). What the run actually drew from is recorded as it happened: the
global generators per phase and epoch, which sources' streams were used
(`sources_used`), and how many loader workers started.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import queue
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from reprogrid import checkpoint, randomness, rngtrace
from reprogrid.config import ConfigError, planned_epochs
from reprogrid.data import Split
from reprogrid.hashing import weights_digest
from reprogrid.library import torch_device, torch_dtype
from reprogrid.models import build_model
from reprogrid.streams import TrainingStart

FIT_KEY = "training.factory"
# Set only inside a `reprogrid diverge` re-execution: a reprogrid.probe.Probe told of
# every batch the run's loaders hand out and of every epoch's end.
PROBE = None
# Set only inside a `reprogrid resume-check` re-execution (reprogrid.resumecheck): what
# to capture, or which checkpoint to resume from with which pieces replaced.
RESUME_CHECK = None
log = logging.getLogger("reprogrid")


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


class _WatchedLoader:
    """A loader that tells a resume check of each epoch's start (reprogrid.resumetrial)."""

    def __init__(self, loader: DataLoader, run: Run):
        self.loader, self.run = loader, run

    def __iter__(self):
        if RESUME_CHECK is not None:  # before the epoch's iterator draws its order and worker seeds
            caller = sys._getframe(0).f_back  # noqa: SLF001 - the loop iterating: the fit's frame
            RESUME_CHECK.on_epoch_start(self.run, len(self.run.epochs) + 1, caller)
        yield from self.loader

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class Run:
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
        self._worker_reports = None  # a queue the loader workers report their starting states on
        self._worker_states: list[dict] = []  # what they reported, drained every epoch
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
            self._initial_states[unique] = checkpoint.generator_state(generator)
            if PROBE is not None:  # so that a random op can be traced to its source
                PROBE.name_generator(generator, unique)
        return generator

    # --- model and data -----------------------------------------------------------

    def model(self) -> torch.nn.Module:
        """The config's model, built under the `init` stream (and nudged by one ULP when
        `ulp` varies), on the run's device and dtype. Called once training has begun, it
        gives the training streams back as they were."""
        training = checkpoint.global_states(cuda=self.device.type == "cuda") if self._training_started else {}
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
            checkpoint.restore_global(name, state)
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
            self._worker_reports = self._worker_reports or multiprocessing.get_context().Queue()
            kwargs["worker_init_fn"] = _WorkerStarts(kwargs.get("worker_init_fn"), self._worker_reports)
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
        return loader if PROBE is None and RESUME_CHECK is None else _WatchedLoader(loader, self)

    def _start_training(self, why: str = "run.resumable") -> None:
        """Switch the global generators to the training streams, once (reprogrid.streams):
        what the build drew is the `init` phase's trace, the epoch-1 trace starts here."""
        if not self._training_started:
            self._training_started, self.training_started_by = True, why
            self.rng["init"] = rngtrace.union([self.rng["init"], rngtrace.advanced(self._setup_since,
                                                                                    rngtrace.snapshot())])
            randomness.seed_training_globals(self._seeds, self._library)
            self._since = rngtrace.snapshot()
            if PROBE is not None:
                PROBE.on_training_start()

    # --- checkpoints --------------------------------------------------------------

    def resumable(self, **state) -> int:
        """Name what the loop trains with, for the run's checkpoints: model, optimizer,
        scheduler, and any extra state (anything with state_dict() and load_state_dict(),
        or a torch, NumPy or Python generator), by name. reprogrid adds its own: the
        global generators, every generator run handed out (the loaders' too), the epochs
        recorded. Call it once, after building everything the loop uses, just before the
        epoch loop. When the run resumes, all of it is restored here. Returns the first
        epoch to train: 1, or k + 1 after the checkpoint of epoch k."""
        if self._state is not None:
            raise FitError("run.resumable was called twice; call it once, before the epoch loop")
        if self.epochs:
            raise FitError("run.resumable was called after run.epoch_end; call it before the epoch loop")
        if self._persistent_workers:
            raise FitError("run.resumable with a loader of persistent workers: their generators live on from epoch "
                           "to epoch where no checkpoint can reach them; leave persistent_workers off")
        self.start.start("run.resumable")  # the training streams first, then what a checkpoint restores
        for name, value in state.items():
            if value is not None and not checkpoint.checkpointable(value):
                raise FitError(f"run.resumable({name}=...): a {type(value).__name__} has no state_dict() and "
                               "load_state_dict() and is not a generator, so it cannot be checkpointed")
        self._state = {name: value for name, value in state.items() if value is not None}
        resume = RESUME_CHECK.resume_payload() if RESUME_CHECK is not None else self._resume
        if resume is None:
            return 1
        self._restore(resume, sys._getframe(1))  # noqa: SLF001 - the fit's frame: its own generators
        return self.resumed_from_epoch + 1

    def pieces(self, frame=None) -> dict:
        """Everything a checkpoint holds, piece by piece (reprogrid.checkpoint); with the
        fit's `frame`, also the generators it holds but did not name (`unregistered.*`)."""
        pieces = {name: checkpoint.state_of(value) for name, value in (self._state or {}).items()}
        pieces |= {f"generator.{name}": checkpoint.generator_state(g) for name, g in self._handed_out.items()}
        pieces |= checkpoint.global_states(cuda=self.device.type == "cuda")
        pieces["record"] = json.dumps({"epochs": self.epochs, "init_weights": self.init_weights,
                                       "ulp_nudge": self.ulp_nudge, "rng": self.rng})
        if frame is not None:
            pieces |= {f"unregistered.{path}": checkpoint.generator_state(g)
                       for path, g in self.unregistered_generators(frame).items()}
        return pieces

    def unregistered_generators(self, frame) -> dict[str, object]:
        """Generators the fit's frame holds (in its variables, or their attributes and
        items, three levels deep) that it did not give to run.resumable and run did not
        hand out: a resumed run cannot continue them."""
        known = {id(v) for v in [self, *(self._state or {}).values(), *self._handed_out.values()]}
        return checkpoint.reachable_generators(frame.f_locals, known)

    def _restore(self, resume: dict, frame) -> None:
        pieces = resume["pieces"]
        for name, value in self._state.items():
            if name in pieces:
                checkpoint.load_into(value, pieces[name])
        for name, generator in self._handed_out.items():
            if f"generator.{name}" in pieces:
                checkpoint.set_generator_state(generator, pieces[f"generator.{name}"])
        for name, state in pieces.items():
            if name.startswith("global."):
                checkpoint.restore_global(name, state)
        if RESUME_CHECK is not None:  # a diagnosis trial: a generator of the fit's own, from the reference
            RESUME_CHECK.restore_unregistered(self.unregistered_generators(frame))
        record = json.loads(pieces["record"])
        self.epochs, self.init_weights = record["epochs"], record["init_weights"]
        self.ulp_nudge, self.rng = record["ulp_nudge"], record["rng"]
        self.resumed_from_epoch = resume["epoch"]
        self.seconds_before = resume.get("train_seconds", 0.0)
        # read back: every piece must now be what the checkpoint holds
        saved = {k: v for k, v in pieces.items() if not k.startswith("unregistered.")}
        self.checkpointing["unrestored"] = checkpoint.differing(saved, self.pieces())
        for name in self.checkpointing["unrestored"]:
            log.warning("resuming %s: %s is not what the checkpoint of epoch %d holds", self.config["run_key"],
                        checkpoint.words(name), self.resumed_from_epoch)
        self._since = rngtrace.snapshot()

    def _after_epoch(self, epoch: int, frame) -> None:
        """Checkpoint the epoch when it is due; stop here when the library configuration
        says to interrupt after it."""
        interrupt = self._library.get("interrupt_after_epoch")
        if RESUME_CHECK is not None:
            RESUME_CHECK.on_epoch_end(self, epoch, frame)
            return
        if self._checkpoints is None:
            return
        if self._state is None:
            if interrupt == epoch:
                raise FitError(f"the library configuration interrupts after epoch {epoch}, but the fit never "
                               "called run.resumable(...), so there is nothing to resume from")
            return
        every = self.config["training"].get("checkpoint_every", 1)
        planned = planned_epochs(self.config["training"])
        last = planned is not None and epoch >= planned  # train.json follows: no checkpoint needed
        if interrupt == epoch or (every and epoch % every == 0 and not last):
            started = time.perf_counter()
            pieces = self.pieces(frame)
            unregistered = [name.removeprefix("unregistered.") for name in pieces if name.startswith("unregistered.")]
            for name in sorted(set(unregistered) - set(self.checkpointing["unregistered"])):
                log.warning("%s holds the generator `%s`, which it did not give to run.resumable: a resumed run "
                            "cannot continue it", self.config["training"].get("factory", "fit"), name)
            self.checkpointing["unregistered"] = sorted(set(self.checkpointing["unregistered"]) | set(unregistered))
            self.checkpointing["bytes"] = self._checkpoints.write(
                epoch, {"epoch": epoch, "seeds": self._seeds, "pieces": pieces,
                        "train_seconds": self.seconds_before + time.perf_counter() - self._started})
            self.checkpointing["written"] += 1
            self.checkpointing["seconds"] += time.perf_counter() - started
        if interrupt == epoch:
            raise Interrupted(epoch)

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
        self._drain_worker_reports()
        if PROBE is not None:
            PROBE.on_epoch_end(epoch, record["weights"])
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
        self._drain_worker_reports(final=True)
        self.worker_duplicates = rngtrace.duplicated(self._worker_states)
        self.worker_starts = len(self._worker_states)
        self.sources_used = self._sources_used()

    def _drain_worker_reports(self, final: bool = False) -> None:
        """Take the loader workers' reports off their queue, so that none waits to exit on
        a full pipe (a worker's queue writes from a thread that must flush before the
        process ends). At the end, reports still in flight are waited for, briefly."""
        if self._worker_reports is None:
            return
        deadline = time.monotonic() + (2 if final else 0)
        while True:
            try:
                self._worker_states.append(self._worker_reports.get(timeout=0.05 if final else 0.001))
            except queue.Empty:
                if time.monotonic() >= deadline or len(self._worker_states) >= self._library["num_workers"]:
                    return

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
            if name == "loader.workers" or checkpoint.differing(
                    {name: self._initial_states[name]}, {name: checkpoint.generator_state(generator)}) == []:
                continue  # a loader draws its worker seed every epoch: it counts once a worker started
            used.add("order" if name == "loader.order" else name.split(".")[1].split("#")[0])
        return [source for source in self._seeds if source in used]


def tensor_dataset(split: Split, features, targets, dtype: torch.dtype) -> TensorDataset:
    """Features as `dtype`; labels as int64 to classify, targets as `dtype` to regress."""
    regression = split.task == "regression"
    return TensorDataset(torch.as_tensor(features, dtype=dtype), torch.as_tensor(targets, dtype=dtype if regression else None))


class Interrupted(BaseException):  # noqa: N818 - control flow, not an error
    """The library configuration's `interrupt_after_epoch` was reached and its checkpoint
    written: this process stops, a fresh one resumes (a BaseException, so that a loop's
    own `except Exception` does not swallow it)."""

    def __init__(self, epoch: int):
        super().__init__(f"interrupted after epoch {epoch}")
        self.epoch = epoch


class NumericalDivergence(ArithmeticError):
    """The training loss became NaN or infinite: the run failed, it did not train."""
