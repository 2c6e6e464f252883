"""Inside one re-execution for `reprogrid resume-check` (reprogrid.investigate.resumecheck): run a
run up to the first batch of an epoch and capture every piece a checkpoint holds
(`capture`), or to the end of that epoch and give its weight fingerprint (`end`);
either from the run's start or resumed from a checkpoint, with one piece replaced by the
reference run's (a trial). Runs in a process of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from reprogrid.training import states


class StopTrial(BaseException):  # noqa: N818 - control flow, not an error
    """What the trial came for is captured: training stops here."""


class Trial:
    """contract.RESUME_CHECK while a trial runs: told of each epoch's first batch and end."""

    def __init__(self, request: dict, out: Path):
        self.mode, self.epoch, self.out = request["mode"], request["epoch"], out
        self.checkpoint = request.get("checkpoint")
        self.override = {}
        if request.get("override"):
            reference = torch.load(request["override"], map_location="cpu", weights_only=True)
            self.override = {request["piece"]: reference[request["piece"]]}

    def resume_payload(self) -> dict | None:
        if self.checkpoint is None:
            return None
        payload = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        payload["pieces"] |= {k: v for k, v in self.override.items() if not k.startswith("unregistered.")}
        return payload

    def restore_unregistered(self, found: dict) -> None:
        """A generator the fit holds but did not name: set from the reference by its path."""
        for name, state in self.override.items():
            path = name.removeprefix("unregistered.")
            if name.startswith("unregistered.") and path in found:
                states.set_generator_state(found[path], state)

    def on_epoch_start(self, run, epoch: int, frame) -> None:
        if self.mode == "capture" and epoch == self.epoch:
            torch.save(run.pieces(frame), self.out)
            raise StopTrial

    def on_epoch_end(self, run, epoch: int, frame) -> None:
        if self.mode == "end" and epoch == self.epoch:
            self.out.write_text(json.dumps({"weights": run.epochs[-1]["weights"]}))
            raise StopTrial
        if self.mode == "capture" and epoch >= self.epoch:
            raise RuntimeError(f"epoch {self.epoch} began without a run.loader: resume-check captures a run's state "
                               "as an epoch's run.loader starts, so the fit must iterate one")


def execute(request: dict, out: Path) -> None:
    from reprogrid.inputs.data import load_split
    from reprogrid.inputs.library import apply_library
    from reprogrid.training import contract
    from reprogrid.training.trainer import train_model

    run_config, seeds = request["run_config"], dict(request["seeds"])  # as recorded, unseeded ones too
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], seeds["split"])
    contract.RESUME_CHECK = Trial(request, out)
    try:
        train_model(run_config, seeds, split)
    except StopTrial:
        pass
    finally:
        contract.RESUME_CHECK = None
