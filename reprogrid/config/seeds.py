"""Seed derivation: one independent stream per randomness source.

Every seed comes from `numpy.random.SeedSequence(root_seed, spawn_key=(source_id,
replicate))`: a `fixed` source uses replicate 0 (the same seed in every replicate), a
`vary` source the replicate number (counted from 1). The source id is a CRC-32 of the
source's name, so a source's stream depends on nothing but its own name, mode and the
replicate: changing one source's mode never moves another source's seed, and adding a
source later moves none.

An `unseeded` source has no seed until the run starts: `draw_unseeded` then takes one
from OS entropy and the run records it, so the "forgot to seed" case stays replayable.
"""

from __future__ import annotations

import secrets
import zlib

import numpy as np

SEED_BITS = 32  # what every consumer accepts, NumPy's legacy global seed included


def source_id(source: str) -> int:
    return zlib.crc32(source.encode("utf-8"))


def derive_seed(root_seed: int, source: str, stream: int) -> int:
    sequence = np.random.SeedSequence(root_seed, spawn_key=(source_id(source), stream))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def derive_seeds(root_seed: int, modes: dict[str, str], replicate: int) -> dict[str, dict]:
    """{source: {"mode": ..., "seed": int or None}} for every source `modes` names (a
    built-in run's SOURCES, or a training.command run's).

    `off` (ulp) still gets a seed so that every run records one per source; nothing
    draws from it. `unseeded` and a command run's `plain` get theirs when the run starts.
    """
    if replicate < 1:
        raise ValueError(f"replicates are counted from 1, got {replicate}")
    seeds = {}
    for source, mode in modes.items():
        if mode in ("unseeded", "plain"):
            seed = None
        else:
            seed = derive_seed(root_seed, source, replicate if mode == "vary" else 0)
        seeds[source] = {"mode": mode, "seed": seed}
    return seeds


def draw_unseeded(seeds: dict[str, dict]) -> dict[str, int]:
    """The integer seed of every source, drawing the unseeded ones from OS entropy."""
    return {
        source: entry["seed"] if entry["seed"] is not None else secrets.randbits(SEED_BITS)
        for source, entry in seeds.items()
    }
