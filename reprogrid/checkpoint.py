"""Checkpoints that carry all of a run's state, so that a run interrupted and resumed is
the uninterrupted run, bit for bit, and where it is not, the piece that was not restored
can be named.

`run.epoch_end` writes one at the end of every `training.checkpoint_every`-th epoch once
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
import random
import re
import shutil
import types
from pathlib import Path

import numpy as np
import torch

from reprogrid.hashing import file_digest, weights_digest
from reprogrid.records import IntegrityError, read_sealed, write_atomically, write_sealed

INDEX = "checkpoint.json"
RESUMED_FROM = "resumed_from"
GENERATOR_TYPES = (random.Random, np.random.Generator, np.random.RandomState, torch.Generator)
# what a piece is, in words (pieces not named here are the fit's own extras)
PIECE_WORDS = {
    "model": "the model's weights", "optimizer": "the optimizer's state", "scheduler": "the learning-rate schedule",
    "global.python": "Python's random", "global.numpy": "NumPy's global generator",
    "global.torch": "torch's global generator", "global.cuda": "the CUDA generators", "record": "the run's record",
}


def is_generator(value) -> bool:
    """A generator with a state to keep (random.SystemRandom reads the OS: it has none)."""
    return isinstance(value, GENERATOR_TYPES) and not isinstance(value, random.SystemRandom)


def _plain(value):
    """NumPy arrays inside a state (MT19937's key, Philox's counter) as tensors of their
    bits, which weights_only loading accepts."""
    if isinstance(value, np.ndarray):
        return {"ndarray": torch.from_numpy(value.view(np.int64) if value.dtype.itemsize == 8
                                            else value.astype(np.int64)), "dtype": value.dtype.str}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _numpy(value):
    if isinstance(value, dict) and set(value) == {"ndarray", "dtype"}:
        array = value["ndarray"].numpy()
        dtype = np.dtype(value["dtype"])
        return array.view(dtype) if dtype.itemsize == 8 else array.astype(dtype)
    if isinstance(value, dict):
        return {k: _numpy(v) for k, v in value.items()}
    return value


def generator_state(generator) -> dict:
    """A generator's state as tensors and plain data."""
    if isinstance(generator, torch.Generator):
        return {"kind": "torch", "state": generator.get_state()}
    if isinstance(generator, np.random.Generator):
        return {"kind": "numpy", "state": _plain(generator.bit_generator.state)}
    if isinstance(generator, np.random.RandomState):
        return {"kind": "numpy_legacy", "state": _plain(generator.get_state(legacy=False))}
    version, internal, gauss = generator.getstate()
    return {"kind": "python", "version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def set_generator_state(generator, state: dict) -> None:
    if isinstance(generator, torch.Generator):
        generator.set_state(state["state"])
    elif isinstance(generator, np.random.Generator):
        generator.bit_generator.state = _numpy(state["state"])
    elif isinstance(generator, np.random.RandomState):
        generator.set_state(_numpy(state["state"]))
    else:
        generator.setstate((state["version"], tuple(state["state"].tolist()), state["gauss"]))


def global_states(cuda: bool) -> dict:
    """The global generators' states: Python's, NumPy's, torch's, and CUDA's for a run on CUDA."""
    states = {"global.python": generator_state(random._inst),  # noqa: SLF001 - the module's own instance
              "global.numpy": generator_state(np.random.mtrand._rand),  # noqa: SLF001 - what np.random.* use
              "global.torch": {"kind": "torch", "state": torch.get_rng_state()}}
    if cuda:
        states["global.cuda"] = {"kind": "cuda", "state": torch.cuda.get_rng_state_all()}
    return states


def restore_global(name: str, state: dict) -> None:
    if name == "global.python":
        set_generator_state(random._inst, state)  # noqa: SLF001
    elif name == "global.numpy":
        set_generator_state(np.random.mtrand._rand, state)  # noqa: SLF001 - what np.random.* draws from
    elif name == "global.torch":
        torch.set_rng_state(state["state"])
    elif name == "global.cuda" and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["state"])


def reachable_generators(variables: dict, known: set[int], depth: int = 3) -> dict[str, object]:
    """{path: generator} for the generators reachable from `variables` (a frame's locals)
    through attributes, list items and dict values, `depth` levels deep, leaving out
    those in `known` (by id) and the global ones."""
    seen = set(known) | {id(random._inst), id(np.random.mtrand._rand), id(torch.default_generator)}  # noqa: SLF001
    found: dict[str, object] = {}
    leaves = (str, bytes, int, float, bool, torch.Tensor, np.ndarray, type, types.ModuleType, types.FunctionType,
              types.MethodType, types.BuiltinFunctionType)

    def visit(path: str, value, levels: int) -> None:
        if id(value) in seen or value is None or isinstance(value, leaves):
            return
        seen.add(id(value))
        if is_generator(value):
            found[path] = value
            return
        if levels == 0:
            return
        if isinstance(value, (list, tuple)):
            items = [(f"{path}[{i}]", item) for i, item in enumerate(value[:64])]
        elif isinstance(value, dict):
            items = [(f"{path}[{key!r}]", item) for key, item in list(value.items())[:64]]
        elif hasattr(value, "__dict__"):
            items = [(f"{path}.{name}", item) for name, item in vars(value).items()]
        else:
            return
        for item_path, item in items:
            visit(item_path, item, levels - 1)

    for name, value in variables.items():
        visit(name, value, depth)
    return found


def state_of(value):
    """What a checkpoint keeps of `value`: a generator's state or a state_dict()."""
    return generator_state(value) if is_generator(value) else value.state_dict()


def load_into(value, state) -> None:
    if is_generator(value):
        set_generator_state(value, state)
    else:
        value.load_state_dict(state)


def checkpointable(value) -> bool:
    return is_generator(value) or (callable(getattr(value, "state_dict", None))
                                   and callable(getattr(value, "load_state_dict", None)))


def equal(a, b) -> bool:
    """Bit-for-bit equality of two states (nested dicts, lists, tensors, numbers)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def first_difference(a, b, path: str = "") -> str | None:
    """Where two states first differ, as a path into them (`param_groups[0]['lr']`);
    None where they are equal."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return next((found for k in a if (found := first_difference(a[k], b[k], f"{path}[{k!r}]"))), None)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return next((found for i, (x, y) in enumerate(zip(a, b))
                     if (found := first_difference(x, y, f"{path}[{i}]"))), None)
    return None if equal(a, b) else (path or "the whole state")


def differing(pieces_a: dict, pieces_b: dict) -> list[str]:
    """Names of the pieces that are not the same in both (or are in one only)."""
    return [name for name in dict.fromkeys([*pieces_a, *pieces_b])
            if name not in pieces_a or name not in pieces_b or not equal(pieces_a[name], pieces_b[name])]


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
