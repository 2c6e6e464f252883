"""The GPU grid (config/examples/gpu.yaml) without Snakemake or MLflow, for a GPU
machine where only PyTorch is at hand: every run in a fresh Python process, through the
same library code as the train and evaluate steps (apply_library sets
CUBLAS_WORKSPACE_CONFIG before CUDA starts; train_model; evaluate_model), then per
library configuration: distinct weight and prediction hashes over the replicates, the
first epoch where replicates part, and the median training time relative to
`reference_libconf`.

    python benchmarks/gpu_grid.py [--config config/examples/gpu.yaml] [--out gpu_grid.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one_run(config_path: str, setting: str, libconf: str, replicate: int) -> dict:
    import yaml

    from reprogrid.config import resolve_run_config
    from reprogrid.config.seeds import derive_seeds, draw_unseeded
    from reprogrid.evaluation.evaluator import evaluate_model
    from reprogrid.inputs.data import load_split
    from reprogrid.inputs.library import apply_library
    from reprogrid.record.environment import environment_record, record_digest
    from reprogrid.record.hashing import predictions_digest, weights_digest
    from reprogrid.training.train_run import train_with_warnings

    config = yaml.safe_load(Path(config_path).read_text())
    run_config = resolve_run_config(config, setting, libconf, replicate)
    seeds = draw_unseeded(derive_seeds(config["root_seed"], run_config["seed_modes"], replicate))
    effective = apply_library(run_config["library"])
    env = environment_record()
    split = load_split(run_config["dataset"], seeds["split"])
    result, determinism_warnings = train_with_warnings(run_config, seeds, split)
    metrics, logits, labels = evaluate_model(result.model, run_config, split)
    return {
        "libconf": libconf, "replicate": replicate, "train_seconds": result.train_seconds,
        "test_accuracy": metrics.get("test_accuracy"), "init_weights": result.init_weights,
        "weights": weights_digest(result.model.state_dict()), "predictions": predictions_digest(logits, labels),
        "epochs": [e["weights"] for e in result.epochs], "env_hash": record_digest(env),
        "library": effective,
        "warnings": determinism_warnings,
    }


def first_parting(runs: list[dict]) -> int | None:
    from reprogrid.analysis.divergence import first_divergent_epoch

    epochs = [first_divergent_epoch(a["init_weights"], a["epochs"], b["init_weights"], b["epochs"])
              for a, b in itertools.combinations(runs, 2)]
    epochs = [e for e in epochs if e is not None]
    return min(epochs) if epochs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "config" / "examples" / "gpu.yaml"))
    parser.add_argument("--out", default="gpu_grid.json")
    parser.add_argument("--one", nargs=3, metavar=("SETTING", "LIBCONF", "REPLICATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.config, args.one[0], args.one[1], int(args.one[2]))))
        return
    import yaml

    config = yaml.safe_load(Path(args.config).read_text())
    runs = []
    for libconf in config["library_configs"]:
        for setting in config["seed_settings"]:
            for replicate in range(1, config["replicates"] + 1):
                started = time.perf_counter()
                done = subprocess.run([sys.executable, __file__, "--config", args.config, "--one", setting, libconf,
                                       str(replicate)], capture_output=True, text=True)
                if done.returncode != 0:
                    runs.append({"libconf": libconf, "replicate": replicate, "error": done.stderr[-2000:]})
                    print(f"{libconf} r{replicate}: FAILED\n{done.stderr[-2000:]}", flush=True)
                    continue
                run = json.loads(done.stdout.strip().splitlines()[-1])
                run["process_seconds"] = time.perf_counter() - started
                runs.append(run)
                print(f"{libconf} r{replicate}: {run['weights'][:12]} {run['train_seconds']:.2f} s "
                      f"acc {run['test_accuracy']:.4f} warnings {len(run['warnings'])}", flush=True)
    reference = config.get("reference_libconf") or next(iter(config["library_configs"]))
    medians = {lc: statistics.median([r["train_seconds"] for r in runs if r["libconf"] == lc and "error" not in r])
               for lc in config["library_configs"] if any(r["libconf"] == lc and "error" not in r for r in runs)}
    summary = []
    for libconf, median in medians.items():
        mine = [r for r in runs if r["libconf"] == libconf and "error" not in r]
        summary.append({
            "libconf": libconf, "runs": len(mine), "distinct_weights": len({r["weights"] for r in mine}),
            "distinct_predictions": len({r["predictions"] for r in mine}), "first_divergent_epoch": first_parting(mine),
            "train_seconds_median": round(median, 3),
            "relative_to_reference": round(median / medians[reference], 3) if reference in medians else None,
            "test_accuracy_mean": round(statistics.mean(r["test_accuracy"] for r in mine), 5),
            "determinism_warnings": sorted({w for r in mine for w in r["warnings"]}),
            "library": mine[0]["library"],
        })
    print(json.dumps([{k: v for k, v in s.items() if k != "library"} for s in summary], indent=1))
    Path(args.out).write_text(json.dumps({"reference": reference, "summary": summary, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
