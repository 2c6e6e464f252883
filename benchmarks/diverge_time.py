"""How long `reprogrid diverge` takes on pairs of demo runs.

    python benchmarks/diverge_time.py > benchmarks/results/diverge.json

Runs the demo grid's model and training (config/config.yaml: a CNN, 15 epochs) for the
first replicate of `all_fixed` under t1, t2 and numpy_unseeded, and of `init` under t1
(replicates 1 and 2), then times `reprogrid diverge` end to end (a fresh process, as a
user runs it) on three pairs: t1 against t2 (down to the operation, when the thread
count changes the bits on this CPU), two replicates of numpy_unseeded (down to the
step) and two replicates of `init` (the recorded epoch 0 alone). Prints one JSON
document with each pair's seconds and finding, and the commit measured.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PAIRS = {"t1 vs t2": ("all_fixed/t1/r1", "all_fixed/t2/r1"),
         "numpy_unseeded r1 vs r2": ("all_fixed/numpy_unseeded/r1", "all_fixed/numpy_unseeded/r2"),
         "init r1 vs r2": ("init/t1/r1", "init/t1/r2")}


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    # the code measured, not the benchmark outputs run_all.sh writes before this step
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "reprogrid", "Snakefile",
                            "benchmarks/*.py"], cwd=REPO).returncode
    return head.strip() + ("+changes" if dirty else "")


def main() -> int:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config |= {"replicates": 2, "localise": False,
               "cells": [["all_fixed", "t1"], ["all_fixed", "t2"], ["all_fixed", "numpy_unseeded"], ["init", "t1"]]}
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="reprogrid-diverge-bench-") as scratch:
        workdir = Path(scratch)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        subprocess.run([str(bin_dir / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--cores", "2",
                        "--configfile", "config.yaml", "--quiet"], cwd=workdir, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with sqlite3.connect(workdir / "results" / "mlflow.db") as db:
            ids = dict(db.execute("select value, run_uuid from tags where key = 'reprogrid.run_key'").fetchall())
        results = {}
        for name, (a, b) in PAIRS.items():
            out = workdir / "found.json"
            started = time.perf_counter()
            done = subprocess.run([str(bin_dir / "reprogrid"), "diverge", ids[a], ids[b], "--json", str(out)],
                                  cwd=workdir, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if done.returncode not in (0, 1):
                raise RuntimeError(done.stderr[-2000:])
            found = json.loads(out.read_text())
            results[name] = {"runs": [a, b], "seconds": round(seconds, 2),
                             "finding": {k: found[k] for k in ("diverged", "epoch", "step", "phase", "op", "module",
                                                               "cause", "generator")}}
    print(json.dumps({"commit": commit(), "model": "demo CNN, 15 epochs", "pairs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
