"""The part of `run` that checkpoints and resumes (reprogrid.training.checkpoint holds the
files): `run.resumable(...)` names what the loop trains with, every epoch's end writes a
checkpoint when one is due, and a run resumed from one gets every piece back, read back
to be sure. `reprogrid resume-check` works through the same places (the hooks in
reprogrid.training.contract)."""

from __future__ import annotations

import json
import logging
import sys
import time

from torch.utils.data import DataLoader

from reprogrid.config import CHECKPOINT_INTERVAL_S, planned_epochs
from reprogrid.inputs import rngtrace
from reprogrid.training import checkpoint, contract, states
from reprogrid.training.contract import FitError, Interrupted

log = logging.getLogger("reprogrid")


class WatchedLoader:
    """A loader that tells a resume check of each epoch's start (reprogrid.investigate.resumetrial)."""

    def __init__(self, loader: DataLoader, run):
        self.loader, self.run = loader, run

    def __iter__(self):
        if contract.RESUME_CHECK is not None:  # before the epoch's iterator draws its order and worker seeds
            caller = sys._getframe(0).f_back  # noqa: SLF001 - the loop iterating: the fit's frame
            contract.RESUME_CHECK.on_epoch_start(self.run, len(self.run.epochs) + 1, caller)
        yield from self.loader

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class Resumable:
    """Run's checkpoints and resumes (a mixin of reprogrid.training.context.Run)."""

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
            if value is not None and not states.checkpointable(value):
                raise FitError(f"run.resumable({name}=...): a {type(value).__name__} has no state_dict() and "
                               "load_state_dict() and is not a generator, so it cannot be checkpointed")
        self._state = {name: value for name, value in state.items() if value is not None}
        self._last_checkpoint = time.perf_counter()  # checkpoint_interval_s counts from the epoch loop's start
        self._frame_scanned = False  # for generators the fit holds but did not name here
        resume = contract.RESUME_CHECK.resume_payload() if contract.RESUME_CHECK is not None else self._resume
        if resume is None:
            return 1
        self._restore(resume, sys._getframe(1))  # noqa: SLF001 - the fit's frame: its own generators
        return self.resumed_from_epoch + 1

    def pieces(self, frame=None) -> dict:
        """Everything a checkpoint holds, piece by piece (reprogrid.training.checkpoint); with the
        fit's `frame`, also the generators it holds but did not name (`unregistered.*`)."""
        pieces = {name: states.state_of(value) for name, value in (self._state or {}).items()}
        pieces |= {f"generator.{name}": states.generator_state(g) for name, g in self._handed_out.items()}
        pieces |= states.global_states(cuda=self.device.type == "cuda")
        pieces["record"] = json.dumps({"epochs": self.epochs, "init_weights": self.init_weights,
                                       "ulp_nudge": self.ulp_nudge, "rng": self.rng})
        if frame is not None:
            pieces |= {f"unregistered.{path}": states.generator_state(g)
                       for path, g in self.unregistered_generators(frame).items()}
        return pieces

    def unregistered_generators(self, frame) -> dict[str, object]:
        """Generators the fit's frame holds (in its variables, or their attributes and
        items, three levels deep) that it did not give to run.resumable and run did not
        hand out: a resumed run cannot continue them."""
        known = {id(v) for v in [self, *(self._state or {}).values(), *self._handed_out.values()]}
        return states.reachable_generators(frame.f_locals, known)

    def _restore(self, resume: dict, frame) -> None:
        pieces = resume["pieces"]
        for name, value in self._state.items():
            if name in pieces:
                states.load_into(value, pieces[name])
        for name, generator in self._handed_out.items():
            if f"generator.{name}" in pieces:
                states.set_generator_state(generator, pieces[f"generator.{name}"])
        for name, state in pieces.items():
            if name.startswith("global."):
                states.restore_global(name, state)
        if contract.RESUME_CHECK is not None:  # a diagnosis trial: a generator of the fit's own, from the reference
            contract.RESUME_CHECK.restore_unregistered(self.unregistered_generators(frame))
        record = json.loads(pieces["record"])
        self.epochs, self.init_weights = record["epochs"], record["init_weights"]
        self.ulp_nudge, self.rng = record["ulp_nudge"], record["rng"]
        self.resumed_from_epoch = resume["epoch"]
        self.seconds_before = resume.get("train_seconds", 0.0)
        # read back: every piece must now be what the checkpoint holds
        saved = {k: v for k, v in pieces.items() if not k.startswith("unregistered.")}
        self.checkpointing["unrestored"] = states.differing(saved, self.pieces())
        for name in self.checkpointing["unrestored"]:
            log.warning("resuming %s: %s is not what the checkpoint of epoch %d holds", self.config["run_key"],
                        checkpoint.words(name), self.resumed_from_epoch)
        self._since = rngtrace.snapshot()

    def _after_epoch(self, epoch: int, frame) -> None:
        """Checkpoint the epoch when it is due; stop here when the library configuration
        says to interrupt after it."""
        interrupt = self._library.get("interrupt_after_epoch")
        if contract.RESUME_CHECK is not None:
            contract.RESUME_CHECK.on_epoch_end(self, epoch, frame)
            return
        if self._checkpoints is None:
            return
        if self._state is None:
            if interrupt == epoch:
                raise FitError(f"the library configuration interrupts after epoch {epoch}, but the fit never "
                               "called run.resumable(...), so there is nothing to resume from")
            return
        training = self.config["training"]
        every = training.get("checkpoint_every", 1)
        planned = planned_epochs(training)
        last = planned is not None and epoch >= planned  # train.json follows: no checkpoint needed
        due = every and epoch % every == 0 and not last
        # at most one a checkpoint_interval_s: an epoch of milliseconds would otherwise pay as much again for it
        interval = training.get("checkpoint_interval_s", CHECKPOINT_INTERVAL_S)
        write = interrupt == epoch or (due and time.perf_counter() - self._last_checkpoint >= interval)
        if due and not write and not self._frame_scanned:  # a short run writes none: name them all the same
            self._frame_scanned = True
            self._note_unregistered(self.unregistered_generators(frame))
        if write:
            started = time.perf_counter()
            pieces = self.pieces(frame)
            self._frame_scanned = True
            self._note_unregistered(name.removeprefix("unregistered.") for name in pieces
                                    if name.startswith("unregistered."))
            self.checkpointing["bytes"] = self._checkpoints.write(
                epoch, {"epoch": epoch, "seeds": self._seeds, "pieces": pieces,
                        "train_seconds": self.seconds_before + time.perf_counter() - self._started})
            self.checkpointing["written"] += 1
            self._last_checkpoint = time.perf_counter()
            self.checkpointing["seconds"] += self._last_checkpoint - started
        if interrupt == epoch:
            raise Interrupted(epoch)

    def _note_unregistered(self, names) -> None:
        """Warn, once each, of generators the fit holds but did not give to run.resumable."""
        found = set(names)
        for name in sorted(found - set(self.checkpointing["unregistered"])):
            log.warning("%s holds the generator `%s`, which it did not give to run.resumable: a resumed run "
                        "cannot continue it", self.config["training"].get("factory", "fit"), name)
        self.checkpointing["unregistered"] = sorted(set(self.checkpointing["unregistered"]) | found)

