"""Overhead of the workflow against a bare loop doing the same runs.

    python benchmarks/overhead.py small            # benchmarks/configs/small.yaml
    python benchmarks/overhead.py medium           # benchmarks/configs/medium.yaml
    python benchmarks/overhead.py CONFIG.yaml --cores 2 --workflow-cores 1 2

(a) the bare loop (benchmarks/plain_loop.py: the same runs in plain PyTorch, no
reprogrid code, in as many processes as cores, keeping only the metrics) and (b)
`snakemake --cores N` from an empty directory, each timed end to end as a user would see
it, in the order a b b a (this machine's speed drifts; the means of the two of each are
compared). Being different code, the two are not bit-identical; their mean test
accuracies are reported side by side as the check that they train the same runs.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "small": REPO / "benchmarks" / "configs" / "small.yaml",
    "medium": REPO / "benchmarks" / "configs" / "medium.yaml",
}


def timed(command: list[str], **kwargs) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def bare_loop(config: Path, cores: int, scratch: Path) -> tuple[float, dict]:
    scratch.mkdir()
    out = scratch / "bare.json"
    seconds = timed([sys.executable, str(REPO / "benchmarks" / "plain_loop.py"), str(config),
                     "--cores", str(cores), "--out", str(out)])
    return seconds, json.loads(out.read_text())


def snakemake_grid(workdir: Path, config: Path, cores: int) -> float:
    """`snakemake --cores N` on `config` in `workdir`, with the default local store: its seconds."""
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return timed([snakemake, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
                  "--configfile", str(config), "--cores", str(cores), "--quiet"], env=env)


def workflow(config: Path, cores: int, scratch: Path) -> tuple[float, dict]:
    workdir = scratch / f"cores{cores}"
    workdir.mkdir(parents=True)
    seconds = snakemake_grid(workdir, config, cores)
    metrics = {}
    for path in glob.glob(str(workdir / "results" / "runs" / "*" / "*" / "*" / "eval.json")):
        record = json.loads(Path(path).read_text())
        train = json.loads(Path(path).with_name("train.json").read_text())
        metrics[record["run_key"]] = record["metrics"] | {"train_seconds": train["train_seconds"]}
    return seconds, metrics


def mean_accuracy(metrics: dict) -> float:
    return round(statistics.mean(m["test_accuracy"] for m in metrics.values()), 4)


def measure(config: Path, cores: int, workflow_cores: list[int]) -> dict:
    with tempfile.TemporaryDirectory(prefix="reprogrid-bench-") as scratch:
        scratch = Path(scratch)
        bare_times, workflow_times, workflow_metrics = [], {n: [] for n in workflow_cores}, {}
        for order in ("bare", "workflow", "workflow", "bare"):
            if order == "bare":
                seconds, bare_metrics = bare_loop(config, cores, scratch / f"bare{len(bare_times)}")
                bare_times.append(seconds)
                continue
            for n in workflow_cores:
                seconds, workflow_metrics[n] = workflow(config, n, scratch / f"workflow{len(workflow_times[n])}")
                workflow_times[n].append(seconds)
        bare_seconds = statistics.mean(bare_times)
        result = {
            "config": str(config.relative_to(REPO) if config.is_relative_to(REPO) else config),
            "runs": len(bare_metrics),
            "cores": cores,
            "bare_seconds": round(bare_seconds, 2),
            "bare_seconds_each": [round(t, 2) for t in bare_times],
            "compute_seconds_median": round(statistics.median(m["train_seconds"] for m in bare_metrics.values()), 3),
            "test_accuracy_mean": mean_accuracy(bare_metrics),
            "workflow": {},
        }
        for n, times in workflow_times.items():
            seconds, metrics = statistics.mean(times), workflow_metrics[n]
            result["workflow"][f"cores{n}"] = {
                "seconds": round(seconds, 2),
                "seconds_each": [round(t, 2) for t in times],
                "ratio_to_bare": round(seconds / bare_seconds, 3),
                "overhead_seconds_per_run": round((seconds - bare_seconds) / len(bare_metrics), 3),
                "runs": len(metrics),
                "test_accuracy_mean": mean_accuracy(metrics),
                "compute_seconds_median": round(statistics.median(m["train_seconds"] for m in metrics.values()), 3),
            }
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", help="small, medium, or a config file")
    parser.add_argument("--cores", type=int, default=2, help="bare loop processes and workflow --cores")
    parser.add_argument("--workflow-cores", type=int, nargs="+", help="--cores values for the workflow (default: --cores)")
    parser.add_argument("--replicates", type=int, help="override the config's replicates")
    args = parser.parse_args()
    config = WORKLOADS.get(args.workload, Path(args.workload)).resolve()
    with tempfile.TemporaryDirectory(prefix="reprogrid-bench-config-") as scratch:
        if args.replicates:
            grid = yaml.safe_load(config.read_text()) | {"replicates": args.replicates}
            config = Path(scratch) / f"{config.stem}-r{args.replicates}.yaml"
            config.write_text(yaml.safe_dump(grid))
        result = measure(config, args.cores, args.workflow_cores or [args.cores])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
