"""Which global generators a piece of code drew from: digests of their states, before
and after.

Fixing "the seed" fixes only the generators that read it; third-party code draws from
whichever global generator it likes: Python's `random`, NumPy's legacy global
generator, torch's CPU default generator, each CUDA device's. A generator whose state
changed across a phase was drawn from during it (or reseeded: callers take the first
snapshot after their own seeding). The digests are cheap (a few KB hashed), so every
phase of every run is traced.

Data-loader workers are separate processes: what they draw is invisible here, but their
starting states are not. Workers that start from the same state of one generator draw
the same "random" numbers (pytorch#5059): `duplicated` names those generators.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np

GENERATORS = ("python", "numpy", "torch", "cuda")
NAMES = {"python": "Python's random", "numpy": "NumPy's global generator",
         "torch": "torch's global generator", "cuda": "torch's CUDA generators"}


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def snapshot() -> dict[str, str]:
    """A digest of every global generator's state (CUDA's only once CUDA is started:
    reading it must not start it)."""
    import torch

    numpy_state = np.random.get_state()
    states = {
        "python": _digest(repr(random.getstate()).encode()),
        "numpy": _digest(numpy_state[1].tobytes() + repr(numpy_state[2:]).encode()),
        "torch": _digest(torch.random.get_rng_state().numpy().tobytes()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = _digest(b"".join(s.numpy().tobytes() for s in torch.cuda.get_rng_state_all()))
    return states


def advanced(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The generators whose state differs between two snapshots, in GENERATORS order."""
    return [g for g in GENERATORS if g in after and before.get(g, after[g]) != after[g]]


def duplicated(worker_starts: list[dict[str, str]]) -> list[str]:
    """The generators that two or more workers started from in the same state."""
    return [g for g in GENERATORS
            if len([s[g] for s in worker_starts if g in s]) > len({s[g] for s in worker_starts if g in s})]


def union(lists) -> list[str]:
    """Every generator named in any of `lists`, in GENERATORS order."""
    found = set().union(*lists)
    return [g for g in GENERATORS if g in found]


def in_words(generators: list[str]) -> str:
    return ", ".join(NAMES[g] for g in generators) if generators else "no global generator"
