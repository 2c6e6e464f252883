"""The limit a grid's overhead is measured against: what a user would write instead.

A plain loop over the grid's runs, in as many processes as cores, calling reprogrid's
own train and evaluate functions with the same configs and seeds as the workflow, and
writing nothing but the metrics. No Snakemake, no MLflow, no hashes beyond what
training computes, no files per run.

    python benchmarks/bare_loop.py CONFIG --cores 2 --out metrics.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os

import yaml


def run_one(task):
    from reprogrid.data import load_split
    from reprogrid.evaluate import evaluate_model
    from reprogrid.library import apply_library
    from reprogrid.seeds import derive_seeds, draw_unseeded
    from reprogrid.train import train_model

    run_config = task
    seeds = draw_unseeded(derive_seeds(run_config["root_seed"], run_config["seed_modes"], run_config["replicate"]))
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], seeds["split"])
    result = train_model(run_config, seeds, split)
    metrics, _, _ = evaluate_model(result.model, run_config, split)
    return run_config["run_key"], {k: metrics[k] for k in metrics if k != "eval_seconds"} | {
        "train_seconds": result.train_seconds, "eval_seconds": metrics["eval_seconds"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from reprogrid import config as cfg

    with open(args.config) as handle:
        config = yaml.safe_load(handle)
    tasks = [
        cfg.resolve_run_config(config, s, lc, r)
        for s, lc in cfg.grid_cells(config)
        for r in range(1, config["replicates"] + 1)
    ]
    # fresh processes (spawn), each importing torch once, as a hand-written loop would
    with multiprocessing.get_context("spawn").Pool(args.cores) as pool:
        metrics = dict(pool.imap_unordered(run_one, tasks))
    with open(args.out, "w") as handle:
        json.dump(metrics, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
