"""Scale: planning a 10,000-run grid, and comparing 10,000 runs' results.

    python benchmarks/scale.py --runs 10000

1. `snakemake -n` on a grid of RUNS runs (10 settings x 10 library configurations x
   RUNS/100 replicates) against a bare Snakefile with the same jobs, files and
   dependencies and no logic at all (no validation, no params, trivial shell commands):
   wall time and peak memory of each.
2. The compare step over RUNS synthetic runs (train.json, eval.json, predictions.npz
   shaped like real ones: 360 test points, 10 classes, 15 epochs), in a fresh process
   with its imports: wall time and peak memory, and where the time goes (seconds in the
   functions of each phase, benchmarks/phases.py).
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

import numpy as np
import yaml

from reprogrid.analysis.recompute import metrics_from
from reprogrid.config import LIBRARY_DEFAULTS
from reprogrid.record.hashing import file_digest, predictions_digest
from reprogrid.record.sealed import write_sealed

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phases  # noqa: E402 (benchmarks/phases.py, beside this script)

REPO = Path(__file__).resolve().parents[1]
SETTINGS, LIBCONFS = 10, 10

BARE_SNAKEFILE = '''
KEYS = [f"s{{s}}/l{{l}}/r{{r}}" for s in range({settings}) for l in range({libconfs}) for r in range(1, {replicates} + 1)]

rule all:
    input: "results/compare/summary.csv", "results/compare/pairs.csv", "results/compare/report.html"

rule tracking:
    output: "results/tracking.json"
    shell: "touch {{output}}"

rule seed:
    output: "results/runs/{{setting}}/{{libconf}}/r{{replicate}}/seeds.json"
    shell: "touch {{output}}"

rule train:
    input: "results/runs/{{setting}}/{{libconf}}/r{{replicate}}/seeds.json", "results/tracking.json"
    output: "results/runs/{{setting}}/{{libconf}}/r{{replicate}}/model.pt", "results/runs/{{setting}}/{{libconf}}/r{{replicate}}/train.json"
    shell: "touch {{output}}"

rule evaluate:
    input: "results/runs/{{setting}}/{{libconf}}/r{{replicate}}/model.pt", "results/runs/{{setting}}/{{libconf}}/r{{replicate}}/train.json", "results/tracking.json"
    output: "results/runs/{{setting}}/{{libconf}}/r{{replicate}}/eval.json", "results/runs/{{setting}}/{{libconf}}/r{{replicate}}/predictions.npz"
    shell: "touch {{output}}"

rule compare:
    input:
        expand("results/runs/{{key}}/eval.json", key=KEYS),
        expand("results/runs/{{key}}/predictions.npz", key=KEYS),
        expand("results/runs/{{key}}/train.json", key=KEYS),
        "results/tracking.json",
    output: "results/compare/summary.csv", "results/compare/pairs.csv", "results/compare/report.html"
    shell: "touch {{output}}"
'''


def measured(command: list[str], **kwargs) -> dict:
    """Wall seconds and peak resident memory (MiB) of one process and its children."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace")
    if status != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{stderr[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_mib": round(usage.ru_maxrss / 1024, 1)}


def grid_config(replicates: int) -> dict:
    return {
        "experiment": "scale", "root_seed": 1, "replicates": replicates,
        "dataset": {"name": "digits"}, "model": {"name": "mlp", "hidden": [16]},
        "seed_settings": {f"s{i}": ({"init": "vary"} if i else {}) for i in range(SETTINGS)},
        "library_configs": {f"l{i}": {"threads": 1} for i in range(LIBCONFS)},
    }


def dry_runs(runs: int, scratch: Path) -> dict:
    replicates = max(1, runs // (SETTINGS * LIBCONFS))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    workflow_dir, bare_dir = scratch / "workflow", scratch / "bare"
    workflow_dir.mkdir()
    bare_dir.mkdir()
    (workflow_dir / "grid.yaml").write_text(yaml.safe_dump(grid_config(replicates)))
    (bare_dir / "Snakefile").write_text(
        BARE_SNAKEFILE.format(settings=SETTINGS, libconfs=LIBCONFS, replicates=replicates)
    )
    dry = ["-n", "--quiet", "--cores", "2"]
    workflow = measured([snakemake, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workflow_dir),
                         "--configfile", "grid.yaml", *dry], cwd=workflow_dir)
    bare = measured([snakemake, "--snakefile", "Snakefile", *dry], cwd=bare_dir)
    return {
        "runs": SETTINGS * LIBCONFS * replicates,
        "jobs": 3 * SETTINGS * LIBCONFS * replicates + 3,
        "workflow": workflow,
        "bare_snakefile": bare,
        "time_ratio": round(workflow["seconds"] / bare["seconds"], 3),
    }


def write_synthetic_runs(root: Path, runs: int) -> list[str]:
    """Run files shaped like real ones. Setting s0 is reproducible (every replicate
    identical), the others differ; enough structure for every statistic to compute."""
    rng = np.random.default_rng(0)
    replicates = max(1, runs // (SETTINGS * LIBCONFS))
    labels = rng.integers(0, 10, size=360)
    base_logits = rng.standard_normal((360, 10)).astype(np.float32)
    base_weights = rng.standard_normal(64 * 16 + 16 + 16 * 10 + 10).astype(np.float32)
    run_dirs = []
    for s in range(SETTINGS):
        for lc in range(LIBCONFS):
            for r in range(1, replicates + 1):
                key = f"s{s}/l{lc}/r{r}"
                run_dir = root / key
                run_dir.mkdir(parents=True)
                variant = 0 if s == 0 else r
                logits = base_logits + (0.5 * variant * rng.standard_normal((360, 10))).astype(np.float32)
                np.savez(run_dir / "predictions.npz", logits=logits, labels=labels)
                # the final weights of a 64-16-10 MLP, as evaluate writes them
                np.save(run_dir / "weights.npy", base_weights + np.float32(0.01 * variant))
                tag = f"{s}-{lc}-{variant}"
                run_config = {
                    "run_key": key, "setting": f"s{s}", "libconf": f"l{lc}", "replicate": r,
                    "seed_modes": {"split": "fixed", "init": "fixed" if s == 0 else "vary", "order": "fixed",
                                   "dropout": "fixed", "augment": "fixed", "sampling": "fixed", "ulp": "off"},
                    "model": {"name": "mlp", "hidden": [16], "dropout": 0.0}, "augment": {"noise_std": 0.0},
                    "training": {"epochs": 15}, "library": LIBRARY_DEFAULTS,
                }
                train = {
                    "run_key": key, "run_config": run_config, "expect_bitwise": s == 0,
                    "hashes": {"init_weights": f"init-{tag}", "weights": f"w-{tag}"},
                    "epochs": [{"epoch": e, "train_loss": 1.0 / e, "weights": f"e{e}-{tag}"} for e in range(1, 16)],
                    "train_seconds": float(rng.uniform(0.2, 0.3)),
                }
                evaluation = {"run_key": key, "metrics": metrics_from(logits, labels, "classification", "auto")
                              | {"eval_seconds": 0.01},
                              "hashes": {"predictions": predictions_digest(logits, labels)},
                              "files": {name: file_digest(run_dir / name) for name in ("predictions.npz", "weights.npy")}}
                write_sealed(run_dir / "train.json", train)
                write_sealed(run_dir / "eval.json", evaluation)
                run_dirs.append(str(run_dir))
    return run_dirs


COMPARE = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[4])
import phases
phases.timing(json.loads(sys.argv[5]))
from reprogrid.steps.compare import run_compare
run_dirs = json.load(open(sys.argv[1]))
out = sys.argv[2]
# synthetic runs have no MLflow records to check against (every other check runs)
run_compare(run_dirs, sys.argv[3], f"{out}/summary.csv", f"{out}/pairs.csv", f"{out}/report.html",
            verify_records=False)
json.dump({"phases": phases.seconds(), "inside": time.perf_counter() - started}, open(f"{out}/phases.json", "w"))
"""
# where compare's time goes: the functions it spends it in (benchmarks/phases.py)
COMPARE_PHASES = {
    "reading the runs' files": "reprogrid.analysis.runs:load_run",
    "grouping runs into cells": "reprogrid.analysis.cells:Cell.of",
    "pairs of replicates (pairs.csv)": "reprogrid.analysis.cells:Cell.pair_rows",
    "pairs across library configurations": "reprogrid.analysis.comparison:libconf_pairs",
    "cell statistics (summary.csv)": "reprogrid.analysis.comparison:cell_row",
    "attribution.csv": "reprogrid.analysis.comparison:attribution_rows",
    "power.csv": "reprogrid.analysis.comparison:power_rows",
    "versus.csv": "reprogrid.analysis.comparison:versus_rows",
    "writing the CSVs": "reprogrid.analysis.comparison:write_csv",
    "figures": "reprogrid.report.figures:write_figures",
    "report.html": "reprogrid.report.render:render_report",
    "MLflow record and artifacts": "reprogrid.record.mlflow_runs:log_artifacts",
}


def compare(runs: int, scratch: Path) -> dict:
    from reprogrid.steps.setup import prepare_tracking

    run_dirs = write_synthetic_runs(scratch / "runs", runs)
    (scratch / "run_dirs.json").write_text(json.dumps(run_dirs))
    prepare_tracking(f"sqlite:///{scratch}/mlflow.db", "scale", scratch / "tracking.json")
    (scratch / "compare").mkdir()
    result = measured([sys.executable, "-c", COMPARE, str(scratch / "run_dirs.json"),
                       str(scratch / "compare"), str(scratch / "tracking.json"), str(REPO / "benchmarks"),
                       json.dumps(COMPARE_PHASES)])
    return {"runs": len(run_dirs), **result,
            "pairs_csv_mib": round((scratch / "compare" / "pairs.csv").stat().st_size / 2**20, 1),
            "seconds_by_phase": phases.split(result["seconds"], scratch / "compare" / "phases.json")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprogrid-scale-") as scratch:
        scratch = Path(scratch)
        (scratch / "dry").mkdir()
        (scratch / "compare").mkdir()
        result = {"dry_run": dry_runs(args.runs, scratch / "dry"), "compare": compare(args.runs, scratch / "compare")}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
