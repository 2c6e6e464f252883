"""States of what a run trains with, as tensors and plain data (so that they load with
`weights_only=True`): generators of every kind (torch's, NumPy's, Python's, the global
ones), what a fit's frame holds, and comparisons of two states, bit for bit, that say
where they first differ. Checkpoints (reprogrid.training.checkpoint) are made of them."""

from __future__ import annotations

import random
import types

import numpy as np
import torch

GENERATOR_TYPES = (random.Random, np.random.Generator, np.random.RandomState, torch.Generator)
# what a piece is, in words (pieces not named here are the fit's own extras)
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


