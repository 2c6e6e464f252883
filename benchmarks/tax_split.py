"""Where a grid's time goes when the training itself costs almost nothing.

    python benchmarks/tax_split.py --runs 4 24

`snakemake --cores 2` from an empty directory on grids of tiny runs (an 8-unit MLP, one
epoch on digits: a few ms of training each) of two sizes, in the order small, large,
large, small. The difference between the sizes gives the cost per run (three jobs:
seed, train, evaluate); what is left at zero runs is the fixed cost of an invocation.
The large grid's wall time is split by the files the workflow writes as it goes:
start-up (Snakemake's start and DAG, the warm server's imports, the MLflow store and
experiment: up to results/tracking.json), the runs' jobs (up to the last eval.json),
compare (up to its last file) and the rest (audit, report, Snakemake's exit). Prints
one JSON document.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from overhead import snakemake_grid  # noqa: E402


def config(runs: int) -> dict:
    return {"experiment": "reprogrid-bench-tax", "root_seed": 3, "replicates": runs,
            "dataset": {"name": "digits", "test_fraction": 0.2},
            "model": {"name": "mlp", "hidden": [8], "dropout": 0.0},
            "training": {"epochs": 1, "batch_size": 64},
            "seed_settings": {"control": {}}, "library_configs": {"t1": {"threads": 1}}}


def grid(runs: int, workdir: Path) -> dict:
    workdir.mkdir(parents=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config(runs)))
    started = time.time()  # the files' clock: the phases are told apart by their mtimes
    seconds = snakemake_grid(workdir, workdir / "config.yaml", cores=2)
    finished = time.time()
    results = workdir / "results"
    evals = list(results.glob("runs/*/*/*/eval.json"))
    if len(evals) != runs:
        raise RuntimeError(f"{workdir}: {len(evals)} of {runs} runs evaluated")
    store_ready = (results / "tracking.json").stat().st_mtime - started
    runs_done = max(path.stat().st_mtime for path in evals) - started
    compared = max(path.stat().st_mtime for path in (results / "compare").rglob("*") if path.is_file()) - started
    trained = [json.loads(path.with_name("train.json").read_text())["train_seconds"] for path in evals]
    return {"seconds": seconds, "phases": {"start_up": store_ready, "run_jobs": runs_done - store_ready,
                                           "compare": compared - runs_done, "audit_report_exit": finished - started - compared},
            "train_seconds_median": statistics.median(trained)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs=2, default=[4, 24], metavar=("SMALL", "LARGE"))
    args = parser.parse_args()
    small, large = args.runs
    measured = {small: [], large: []}
    with tempfile.TemporaryDirectory(prefix="reprogrid-bench-tax-") as scratch:
        for attempt, runs in enumerate([small, large, large, small]):
            measured[runs].append(grid(runs, Path(scratch) / f"grid{attempt}"))
    mean = {runs: statistics.mean(m["seconds"] for m in results) for runs, results in measured.items()}
    per_run = (mean[large] - mean[small]) / (large - small)
    phases = {name: round(statistics.mean(m["phases"][name] for m in measured[large]), 2)
              for name in measured[large][0]["phases"]}
    print(json.dumps({
        "runs": [small, large],
        "seconds_each": {str(runs): [round(m["seconds"], 2) for m in results] for runs, results in measured.items()},
        "per_run_seconds": round(per_run, 3),
        "per_job_seconds": round(per_run / 3, 3),
        "fixed_seconds": round(mean[small] - small * per_run, 2),
        "train_seconds_median": round(statistics.median(m["train_seconds_median"] for m in measured[large]), 4),
        "phases_of_large": phases,
    }, indent=1))


if __name__ == "__main__":
    main()
