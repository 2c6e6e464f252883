"""Checkpoints that carry all of a run's state, so that a run interrupted and resumed is
the uninterrupted run, bit for bit, and where it is not, the piece that was not restored
can be named.

`run.epoch_end` writes one at the end of a `training.checkpoint_every`-th epoch, at most
one every `training.checkpoint_interval_s` seconds (always at `interrupt_after_epoch`), once
the fit has said what it trains with (`run.resumable(model=..., optimizer=...,
scheduler=..., **extra)`). Its pieces:

- `model`, `optimizer`, `scheduler`, and each extra by its name: a `state_dict()`, or a
  generator's state;
- `generator.<name>`: every generator `run` handed out (`run.torch_generator`,
  `run.numpy_generator`, each loader's order and worker-seed generators);
- `global.python`, `global.numpy`, `global.torch`, `global.cuda`: the global generators;
- `record`: the epochs recorded so far and the run's initial weights, nudge and RNG trace.

At an epoch's end a loader has no position of its own to keep: its next epoch's order,
and the seeds of the workers it starts for that epoch, come from its generators.
Everything is stored as tensors and plain data, so a checkpoint loads with
`weights_only=True`.

Files, in the run's directory: `checkpoint-e{k}.pt`, then `checkpoint.json` (sealed:
the epoch, the .pt's sha256, the run's identity), each written atomically, so a kill
leaves the previous pair or the new one. A run resumes only from a checkpoint of the
same run config, seeds and code. Once the run is trained the checkpoint goes; a run that
resumed keeps the one it resumed from as `resumed_from.pt` / `resumed_from.json`
(`reprogrid resume-check` compares it with the uninterrupted run).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import torch

from reprogrid.record.hashing import file_digest, weights_digest
from reprogrid.record.sealed import IntegrityError, read_sealed, write_atomically, write_sealed

INDEX = "checkpoint.json"
RESUMED_FROM = "resumed_from"
PIECE_WORDS = {
    "model": "the model's weights", "optimizer": "the optimizer's state", "scheduler": "the learning-rate schedule",
    "global.python": "Python's random", "global.numpy": "NumPy's global generator",
    "global.torch": "torch's global generator", "global.cuda": "the CUDA generators", "record": "the run's record",
}


def words(piece: str) -> str:
    if piece in PIECE_WORDS:
        return PIECE_WORDS[piece]
    if piece.startswith("generator."):
        return f"the generator run handed out as {piece.removeprefix('generator.')}"
    if piece.startswith("unregistered."):
        return f"`{piece.removeprefix('unregistered.')}` (a generator the fit holds but did not give to run.resumable)"
    return f"`{piece}`"


FILE_NAME = re.compile(r"checkpoint-e[0-9]+\.pt")  # what an index may name: a file of the run's own directory


def payload_problem(payload) -> str | None:
    """Why a loaded checkpoint cannot be resumed from (pieces missing, a model that is not
    the one its own epoch record fingerprints); None when it can."""
    if not isinstance(payload, dict) or not {"epoch", "seeds", "pieces"} <= payload.keys():
        return "lacks what a resume needs (its epoch, seeds and pieces)"
    pieces = payload["pieces"]
    try:
        record = json.loads(pieces["record"])
        fingerprint = record["epochs"][-1]["weights"]
    except (KeyError, IndexError, TypeError, ValueError):
        return "lacks its epoch record"
    if "model" in pieces and weights_digest(pieces["model"]) != fingerprint:
        return "holds a model that is not the one its own epoch record fingerprints"
    return None


class CheckpointFiles:
    """A run's checkpoint files in `directory`; `identity` (a callable, evaluated once,
    when first needed) says which run a checkpoint belongs to."""

    def __init__(self, directory: str | Path, identity):
        self.directory, self._identity_of, self._identity = Path(directory), identity, None
        self._current: str | None = None  # the checkpoint file the index names now
        self.extra: dict = {}  # what the step adds to every checkpoint (the data's hash, the processes)

    @property
    def identity(self) -> dict:
        if self._identity is None:
            self._identity = self._identity_of()
        return self._identity

    def write(self, epoch: int, payload: dict) -> int:
        """Write the checkpoint of `epoch`; its size in bytes."""
        path = self.directory / f"checkpoint-e{epoch}.pt"
        buffer = io.BytesIO()
        torch.save(payload | self.extra, buffer)
        content = buffer.getvalue()  # hashed as written: no second read of the file
        write_atomically(path, lambda partial: partial.write_bytes(content))
        index = self.directory / INDEX
        if self._current is None:  # the first write of this process: an earlier attempt's file
            named = (self._index_or_none(index) or {}).get("file")
            self._current = named if isinstance(named, str) and FILE_NAME.fullmatch(named) else None
        write_sealed(index, {"epoch": epoch, "file": path.name, "sha256": hashlib.sha256(content).hexdigest(),
                             "identity": self.identity})
        if self._current and self._current != path.name:
            (self.directory / self._current).unlink(missing_ok=True)
        self._current = path.name
        return len(content)

    def latest(self) -> tuple[dict | None, str]:
        """(payload, why): the latest checkpoint of this very run, or None and the reason
        there is none to resume from. The one returned is kept as resumed_from.*."""
        index = self.directory / INDEX
        if not index.exists():
            return None, "no checkpoint"
        try:
            record = read_sealed(index)
        except IntegrityError as error:
            return None, f"checkpoint ignored: {error}"
        if not isinstance(record.get("file"), str) or not FILE_NAME.fullmatch(record["file"]):
            return None, f"checkpoint ignored: {index} names {record.get('file')!r}, not a checkpoint of this run's own"
        if record.get("identity") != self.identity:
            changed = [k for k in self.identity if (record.get("identity") or {}).get(k) != self.identity[k]]
            return None, f"checkpoint of epoch {record.get('epoch')} ignored: another {', '.join(changed)}"
        path = self.directory / record["file"]
        if not path.exists() or file_digest(path) != record["sha256"]:
            return None, f"checkpoint ignored: {path} is missing or not what {index} recorded"
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is one not to resume from
            return None, f"checkpoint ignored: {path} cannot be loaded ({type(error).__name__}: {error})"
        damage = payload_problem(payload)
        if damage:
            return None, f"checkpoint ignored: {path} {damage}"
        kept = self.directory / f"{RESUMED_FROM}.pt"
        write_atomically(kept, lambda partial: shutil.copyfile(path, partial))
        write_sealed(self.directory / f"{RESUMED_FROM}.json", {**record, "file": kept.name})
        return payload, f"resumed from the checkpoint of epoch {record['epoch']}"

    def retire(self) -> None:
        """The run is trained: its checkpoints are no longer a place to resume from (the
        one it resumed from, if any, stays as resumed_from.*). The index goes first, so a
        kill half-way leaves no index naming a missing file; then every checkpoint file,
        an earlier killed attempt's and half-written ones too."""
        (self.directory / INDEX).unlink(missing_ok=True)
        for leftover in [*self.directory.glob("checkpoint-e*.pt"), *self.directory.glob(".checkpoint-e*.partial.pt")]:
            leftover.unlink(missing_ok=True)

    def forget_resume_point(self) -> None:
        """A run trained from its first epoch: a resumed_from.* of an earlier attempt is stale."""
        for name in (f"{RESUMED_FROM}.pt", f"{RESUMED_FROM}.json"):
            (self.directory / name).unlink(missing_ok=True)

    @staticmethod
    def _index_or_none(index: Path) -> dict | None:
        try:
            return read_sealed(index)
        except (OSError, IntegrityError):
            return None
