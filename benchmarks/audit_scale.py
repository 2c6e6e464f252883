"""`reprogrid audit` over a store holding many runs.

    python benchmarks/audit_scale.py --runs 10000

Fills a fresh SQLite store (through MLflow's client, two writer processes) with RUNS
synthetic grid runs carrying the full record of params and tags (100 cells; one cell
predicted bitwise, and one of its runs deliberately off, so the audit has a violation
to find and a divergence epoch to fetch), then times `reprogrid audit` in a fresh
process, imports included; then runs it once more with its phases timed (where the time
goes: benchmarks/phases.py). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phases  # noqa: E402 (benchmarks/phases.py, beside this script)

SETTINGS, LIBCONFS = 10, 10
REPO = Path(__file__).resolve().parents[1]
# where the audit's time goes: the functions it spends it in
AUDIT_PHASES = {
    "opening the store": "reprogrid.record.mlflow_store:existing_store_client",
    "finding the experiment and its grid": "reprogrid.record.mlflow_store:find_experiment",
    "reading every run's record (params, tags, metrics)": "reprogrid.record.mlflow_runs:run_records",
    "fetching epoch fingerprints (train.json artifacts)": "reprogrid.record.mlflow_runs:load_json_artifact",
    "the checks": "reprogrid.investigate.grid_audit:audit",
    "writing audit.json": "reprogrid.steps.audit:write_json",
}
AUDIT = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import phases
phases.timing(json.loads(sys.argv[2]))
from reprogrid.cli import main
main(["audit", "--tracking-uri", sys.argv[3], "--json", sys.argv[4]])
json.dump({"phases": phases.seconds(), "inside": time.perf_counter() - started}, open(sys.argv[5], "w"))
"""


def fill(uri: str, experiment_id: str, keys: list[tuple[str, str, int]]) -> None:
    from reprogrid.config import SOURCES
    from reprogrid.record import mlflow_runs
    from reprogrid.record import mlflow_store as tracking

    client = tracking.client(uri)
    for setting, libconf, replicate in keys:
        key = f"{setting}/{libconf}/r{replicate}"
        fixed = setting == "s0"
        variant = "same" if fixed and key != "s0/l0/r2" else key
        tags = {
            "reprogrid.kind": "run", "reprogrid.run_key": key, "reprogrid.setting": setting,
            "reprogrid.libconf": libconf, "reprogrid.replicate": replicate,
            "reprogrid.expect_bitwise": str(fixed).lower(), "reprogrid.expect_rerun_bitwise": "true",
            "reprogrid.hash.init_weights": "init-same" if fixed else f"init-{key}",
            **{f"reprogrid.hash.{h}": f"{h}-{variant}" for h in ("weights", "predictions")},
            "reprogrid.hash.config": f"config-{key}", "reprogrid.hash.code": "code",
            "reprogrid.hash.env": "env", "reprogrid.hash.library": f"library-{libconf}", "reprogrid.hash.data": "data",
        }
        params = {f"seed.{s}": 1 for s in SOURCES} | {f"seed_mode.{s}": "fixed" for s in SOURCES}
        params |= {f"lib.knob{i}": i for i in range(12)} | {"dataset.name": "digits", "dataset.test_fraction": 0.2}
        run_id = mlflow_runs.create_run(client, experiment_id, key, tags, tracking.now_ms())
        mlflow_runs.log_batch(client, run_id, params=params, metrics={"test_accuracy": 0.9, "train_seconds": 0.3},
                           series={"train_loss": {e: 1.0 / e for e in range(1, 16)}})
        if key.startswith("s0/l0/"):  # the audit fetches fingerprints for the odd run only
            epochs = [{"epoch": e, "weights": f"e{e}-{variant if e > 3 else 'same'}"} for e in range(1, 16)]
            mlflow_runs.log_artifacts(client, run_id, {"train.json": {"epochs": epochs}})
        mlflow_runs.finish_run(client, run_id)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    from reprogrid.record.sealed import read_json
    from reprogrid.steps.setup import prepare_tracking

    replicates = max(1, args.runs // (SETTINGS * LIBCONFS))
    keys = [(f"s{s}", f"l{lc}", r) for s in range(SETTINGS) for lc in range(LIBCONFS) for r in range(1, replicates + 1)]
    with tempfile.TemporaryDirectory(prefix="reprogrid-audit-") as scratch:
        uri = f"sqlite:///{scratch}/mlflow.db"
        grid = {"cells": [[f"s{s}", f"l{lc}"] for s in range(SETTINGS) for lc in range(LIBCONFS)],
                "replicates": replicates}
        prepare_tracking(uri, "audit-scale", Path(scratch) / "tracking.json", grid)
        experiment_id = read_json(Path(scratch) / "tracking.json")["experiment_id"]
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            pool.starmap(fill, [(uri, experiment_id, keys[i::2]) for i in range(2)])
        fill_seconds = time.perf_counter() - started

        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "reprogrid.cli", "audit", "--tracking-uri", uri,
                                    "--json", f"{scratch}/audit.json"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        report = json.loads(Path(scratch, "audit.json").read_text())

        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", AUDIT, str(REPO / "benchmarks"), json.dumps(AUDIT_PHASES), uri,
                        f"{scratch}/audit-again.json", f"{scratch}/phases.json"], capture_output=True, check=True)
        again = time.perf_counter() - started
        by_phase = phases.split(again, Path(scratch, "phases.json"))
    print(json.dumps({
        "runs": len(keys), "fill_seconds": round(fill_seconds, 1),
        "audit": {"seconds": round(seconds, 2), "peak_mib": round(usage.ru_maxrss / 1024, 1),
                  "exit_status": os.waitstatus_to_exitcode(status),
                  "violations": [v["message"] for v in report["violations"]]},
        "audit_again_by_phase": {"seconds": round(again, 2), "seconds_by_phase": by_phase},
    }, indent=1))


if __name__ == "__main__":
    main()
