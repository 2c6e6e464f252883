"""Step `seed`: derive every source's seed for one run (NumPy only: cheap)."""

from __future__ import annotations

import logging
from pathlib import Path

from reprogrid import config as cfg
from reprogrid.config.seeds import derive_seeds
from reprogrid.record.sealed import write_json

log = logging.getLogger("reprogrid")


def run_seed(setting: str, libconf: str, replicate: int | str, root_seed: int, modes: dict,
             out_path: str | Path, variant: str | None = None) -> None:
    replicate = int(replicate)
    run_key = cfg.run_key(setting, libconf, replicate, variant)
    seeds = derive_seeds(root_seed, modes, replicate)
    write_json(out_path, {"run_key": run_key, "root_seed": root_seed, "seeds": seeds})
    log.info("seeds of %s: %s", run_key, {s: e["seed"] if e["seed"] is not None else e["mode"] for s, e in seeds.items()})
