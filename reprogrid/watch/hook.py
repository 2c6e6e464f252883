"""The watch in one process: `install(spec_path)`, called by `site/sitecustomize.py`
before the script's first line.

The main process (the command's first Python) seeds the global generators the spec
fixes and applies the library configuration, with the original functions, then wraps
the seeding functions and hooks optimizer steps; at exit it writes `watch.json`: the
library state read back, steps, fingerprints, the RNG trace, the final parameters
(`final_weights.npz`) and the code that ran. Any other process (a DataLoader worker, a
Python subprocess) only journals its seeding calls and first draws.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

from reprogrid.watch import MAIN_PID
from reprogrid.watch.journal import Journal
from reprogrid.watch.seeding import Watch

WATCH_JSON = "watch.json"
FINAL_WEIGHTS = "final_weights.npz"


def install(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    main = os.environ.get(MAIN_PID) in (None, str(os.getpid()))
    if main:
        os.environ[MAIN_PID] = str(os.getpid())  # children inherit it and know they are children
    journal = Journal(spec["record_dir"], int(os.environ[MAIN_PID]))
    import numpy
    import torch

    if main:
        from reprogrid.inputs.library import apply_library

        apply_library(spec["library"])  # before anything the script does; threads first
        _seed(spec["seeds"], numpy, torch)
    watch = Watch(journal)
    watch.install_python()
    watch.install_numpy(numpy)
    watch.install_torch(torch)
    if main:
        from reprogrid.watch.steps import StepWatch

        steps = StepWatch(journal)
        steps.install(torch)
        atexit.register(_finish, spec, steps)
        if spec.get("probe"):  # a re-execution for `reprogrid diverge`
            from reprogrid.watch.probe import watch_command

            watch_command(spec["probe"])


def _seed(seeds: dict, numpy, torch) -> None:
    """reprogrid's own seeding, before the script runs (not journaled: it is the spec's)."""
    import random

    if seeds.get("torch") is not None:
        torch.manual_seed(seeds["torch"])
    if seeds.get("numpy") is not None:
        numpy.random.seed(seeds["numpy"] % 2**32)
    if seeds.get("python") is not None:
        random.seed(seeds["python"])


def code_files(script: str) -> list[str]:
    """The script and every module it imported from under its own folder (not from an
    environment installed there)."""
    root = Path(script).resolve().parent
    found = {str(Path(script).resolve())}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.endswith(".py") and os.path.isabs(path):  # torch._classes: "_classes.py"
            resolved = Path(path).resolve()
            if resolved.is_relative_to(root) and "site-packages" not in resolved.parts and resolved.is_file():
                found.add(str(resolved))
    return sorted(found)


def _finish(spec: dict, steps) -> None:
    import numpy

    from reprogrid.inputs.library import effective_library
    from reprogrid.record.hashing import file_digest
    from reprogrid.record.sealed import write_json
    from reprogrid.watch.steps import raw_array

    record_dir = Path(spec["record_dir"])
    steps.trace_to_the_end()
    parameters = steps.final_parameters()
    if parameters:
        import torch

        # bfloat16 saved as its bits (NumPy has none), named so that they are read back as such
        arrays = {f"p{i}" + ("_bfloat16" if p.dtype == torch.bfloat16 else ""): raw_array(p)
                  for i, p in enumerate(parameters)}
        numpy.savez(record_dir / FINAL_WEIGHTS, **arrays)
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c") else None
    write_json(record_dir / WATCH_JSON, {
        "library_effective": effective_library(spec["library"]),
        "steps": steps.steps,
        "fingerprints": steps.hash_fingerprints(),
        "rng_intervals": steps.intervals,
        "initial_fingerprint": steps.initial_fingerprint(),
        "final_fingerprint": steps.fingerprint(parameters) if parameters else None,
        "code": {path: file_digest(path) for path in code_files(script)} if script else {},
        "script": str(Path(script).resolve()) if script else None,
    })
