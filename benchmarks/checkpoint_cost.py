"""What checkpointing after every epoch costs a training, on the medium workload.

    python benchmarks/checkpoint_cost.py > benchmarks/results/checkpoint.json

One run of benchmarks/configs/medium.yaml (a CNN, 120 epochs on digits, one thread)
trained in this process through reprogrid's own training path, with a checkpoint after
every epoch (`training.checkpoint_every: 1` with `checkpoint_interval_s: 0`; the default
since 0.3 writes at most one a minute) and without (0), after one
training that warms the process up (discarded), in the order with, without, without,
with, twice (this machine's speed drifts; the means are compared).
Reports both wall times, their ratio, the time spent writing checkpoints as measured
inside the training, and a checkpoint's size. Both trainings end with the same weights
(checked), so they did the same work. Prints one JSON document.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reprogrid import config as cfg  # noqa: E402
from reprogrid.config.seeds import derive_seeds, draw_unseeded  # noqa: E402
from reprogrid.inputs.data import load_split  # noqa: E402
from reprogrid.inputs.library import apply_library  # noqa: E402
from reprogrid.record.hashing import weights_digest  # noqa: E402
from reprogrid.training.checkpoint import CheckpointFiles  # noqa: E402
from reprogrid.training.trainer import train_model  # noqa: E402

WORKLOAD = REPO / "benchmarks" / "configs" / "medium.yaml"


def train_once(config: dict, every: int) -> dict:
    run_config = cfg.resolve_run_config(config, "control", "t1", 1)
    run_config["training"] |= {"checkpoint_every": every, "checkpoint_interval_s": 0}  # the cost per epoch
    seeds = draw_unseeded(derive_seeds(config["root_seed"], run_config["seed_modes"], 1))
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], seeds["split"])
    with tempfile.TemporaryDirectory() as scratch:
        files = CheckpointFiles(scratch, lambda: {"run_key": run_config["run_key"]})
        started = time.perf_counter()
        result = train_model(run_config, seeds, split, files)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "checkpoint_seconds": result.checkpointing["seconds"],
            "checkpoints": result.checkpointing["written"], "checkpoint_bytes": result.checkpointing["bytes"],
            "weights": weights_digest(result.model.state_dict())}


def main() -> None:
    config = yaml.safe_load(WORKLOAD.read_text())
    order = [1, 0, 0, 1] * 2
    train_once(config, 0)  # warm-up: first-call costs of this process, in neither mean
    runs = [train_once(config, every) for every in order]
    with_checkpoints = [r for every, r in zip(order, runs) if every]
    without = [r for every, r in zip(order, runs) if not every]
    assert len({r["weights"] for r in runs}) == 1, "checkpointing changed the trained weights"
    mean_with = statistics.mean(r["seconds"] for r in with_checkpoints)
    mean_without = statistics.mean(r["seconds"] for r in without)
    inside = statistics.mean(r["checkpoint_seconds"] for r in with_checkpoints)
    print(json.dumps({
        "workload": str(WORKLOAD.relative_to(REPO)), "run": "control/t1/r1",
        "epochs": config["training"]["epochs"], "torch": torch.__version__,
        "order": order, "seconds_each": [round(r["seconds"], 3) for r in runs],
        "seconds_with_checkpoints": round(mean_with, 3), "seconds_without": round(mean_without, 3),
        "ratio": round(mean_with / mean_without, 4),
        "checkpoints_written": with_checkpoints[0]["checkpoints"],
        "checkpoint_seconds_inside": round(inside, 3),
        "checkpoint_share_inside": round(inside / mean_with, 4),
        "checkpoint_bytes": with_checkpoints[0]["checkpoint_bytes"],
    }, indent=1))


if __name__ == "__main__":
    main()
