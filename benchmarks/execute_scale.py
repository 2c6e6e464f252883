"""Executing large grids: Snakemake's scheduler, and a 2,000-run grid run for real.

    python benchmarks/execute_scale.py --runs 2000 --trivial-jobs 2000

1. Scheduler: a Snakefile of TRIVIAL_JOBS independent `touch` jobs under `--cores 2`,
   once with Snakemake's default ILP scheduler and once with the greedy one that
   reprogrid's `profiles/default` selects: wall seconds of each.
2. The real workflow on a grid of RUNS tiny runs (4 settings x 1 library configuration,
   an MLP of 8 hidden units, 1 epoch on digits) with `--cores 2` from an empty
   directory: seed, train, evaluate, MLflow records, compare and audit. Reported: wall
   seconds, jobs, and the CPU seconds of the Snakemake process itself (DAG, scheduling,
   bookkeeping; its jobs run in other processes), sampled from /proc, as a share of
   the wall time.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TRIVIAL = '''
rule all:
    input: expand("out/{{i}}.txt", i=range({jobs}))

rule one:
    output: "out/{{i}}.txt"
    shell: "touch {{output}}"
'''
TICKS = os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of process `pid` itself, not of its children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def run(command: list[str], cwd: Path) -> dict:
    """Wall seconds of `command`, and the last CPU reading of its own process."""
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.perf_counter()
    # to a file, not a pipe: a pipe nobody reads until the end fills up and blocks snakemake
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.DEVNULL, stderr=log)
        cpu = 0.0
        while process.poll() is None:
            cpu = own_cpu_seconds(process.pid) or cpu
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        log.seek(0)
        stderr = log.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{stderr[-3000:]}")
    return {"seconds": round(seconds, 2), "snakemake_cpu_seconds": round(cpu, 2)}


def schedulers(jobs: int, scratch: Path) -> dict:
    result = {"jobs": jobs}
    for scheduler in ("ilp", "greedy"):
        workdir = scratch / scheduler
        workdir.mkdir()
        (workdir / "Snakefile").write_text(TRIVIAL.format(jobs=jobs))
        result[scheduler] = run([SNAKEMAKE, "--cores", "2", "--quiet", "--scheduler", scheduler], workdir)
    result["ilp_over_greedy"] = round(result["ilp"]["seconds"] / result["greedy"]["seconds"], 2)
    return result


def grid(runs: int, scratch: Path) -> dict:
    settings = 4
    config = {
        "experiment": "execute-scale", "root_seed": 1, "replicates": runs // settings,
        "dataset": {"name": "digits"}, "model": {"name": "mlp", "hidden": [8]},
        "training": {"epochs": 1, "batch_size": 128},
        "seed_settings": {"control": {}, "init": {"init": "vary"}, "order": {"order": "vary"},
                          "all": {"init": "vary", "order": "vary"}},
        "library_configs": {"t1": {"threads": 1}},
    }
    (scratch / "grid.yaml").write_text(yaml.safe_dump(config))
    measured = run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(scratch),
                    "--configfile", "grid.yaml", "--cores", "2", "--quiet"], scratch)
    evaluated = len(list((scratch / "results" / "runs").glob("*/*/*/eval.json")))
    return {"runs": evaluated, "jobs": 3 * evaluated + 2, **measured,
            "snakemake_share_of_wall": round(measured["snakemake_cpu_seconds"] / measured["seconds"], 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--trivial-jobs", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprogrid-execute-") as scratch:
        scratch = Path(scratch)
        (scratch / "schedulers").mkdir()
        (scratch / "grid").mkdir()
        result = {"schedulers": schedulers(args.trivial_jobs, scratch / "schedulers"),
                  "grid": grid(args.runs, scratch / "grid")}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
