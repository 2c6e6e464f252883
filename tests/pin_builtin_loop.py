"""Pin the built-in training loop's results: the initial and final weights hashes, every
epoch's fingerprint and the predictions hash of the first replicate of every reproducible
cell of the demo grid (config/config.yaml) and the ablation (config/examples/ablation.yaml),
trained in this process exactly as the train and evaluate steps train them.

    python tests/pin_builtin_loop.py > tests/data/builtin_loop.json

tests/test_builtin_loop_pinned.py recomputes them and requires the same bits, on the CPU
model they were pinned on (other CPUs may take other kernels: there it says so and skips).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"demo": REPO / "config" / "config.yaml", "ablation": REPO / "config" / "examples" / "ablation.yaml"}
REPLICATES = (1,)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def pinned_runs(config: dict):
    """(key, run_config) for the runs pinned from `config`: those predicted to rerun bit for bit."""
    from reprogrid import config as cfg
    from reprogrid.prediction import expect_rerun_bitwise

    for setting, libconf in cfg.grid_cells(config):
        for replicate in REPLICATES:
            run_config = cfg.resolve_run_config(config, setting, libconf, replicate)
            if expect_rerun_bitwise(run_config):
                yield run_config["run_key"], run_config


def results_of(run_config: dict) -> dict:
    """What the train and evaluate steps would record for this run, computed here."""
    from reprogrid.data import load_split
    from reprogrid.evaluate import evaluate_model
    from reprogrid.hashing import predictions_digest
    from reprogrid.library import apply_library
    from reprogrid.seeds import derive_seeds, draw_unseeded
    from reprogrid.train import train_model

    seeds = draw_unseeded(derive_seeds(run_config["root_seed"], run_config["seed_modes"], run_config["replicate"]))
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], seeds["split"])
    result = train_model(run_config, seeds, split)
    _, logits, labels = evaluate_model(result.model, run_config, split)
    return {"init_weights": result.init_weights, "epochs": [e["weights"] for e in result.epochs],
            "predictions": predictions_digest(logits, labels)}


def main() -> int:
    import torch

    pinned = {"cpu_model": cpu_model(), "torch": torch.__version__, "runs": {}}
    for name, path in CONFIGS.items():
        config = yaml.safe_load(path.read_text())
        pinned["runs"][name] = {key: results_of(run_config) for key, run_config in pinned_runs(config)}
    json.dump(pinned, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
