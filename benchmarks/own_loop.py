"""A user's own loop through `fit(run)` and `run.epoch_end`, against the same loop plain.

    python benchmarks/own_loop.py --runs 6 --epochs 40 --cores 2 --rounds 2

The loop is benchmarks/own_loop_user.py: the user's CNN, their own DataLoader built
before the model, 40 epochs on the digits' training split. (a) plain: the loop in
`cores` fresh processes, only torch seeded; (b) reprogrid: `snakemake --cores N` from an
empty directory with `training.factory: userloop:fit`. Each round runs a b b a (this
machine's speed drifts). What is compared is the loop's own time per run, from building
the loader to the last epoch's end: `plain()`'s timer against train.json's
`train_seconds` (which spans the fit and the run's construction and checks around it).
The whole process's wall time is reported beside it. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from overhead import snakemake_grid  # noqa: E402
from plain_loop import digits  # noqa: E402


def config(runs: int, epochs: int) -> dict:
    return {"experiment": "reprogrid-bench-own-loop", "root_seed": 5, "replicates": runs,
            "dataset": {"name": "digits", "test_fraction": 0.2},
            "model": {"factory": "userloop:Net"},
            "training": {"factory": "userloop:fit", "kwargs": {"epochs": epochs}},
            "seed_settings": {"fixed": {}}, "library_configs": {"t1": {"threads": 1}}}


def warm_up() -> None:
    """What torch imports on first use (an optimizer's first step pulls in torch._dynamo)
    is loaded before the timer: reprogrid's warm server has it loaded too, and the loop,
    not an import, is what is compared."""
    import torch
    from own_loop_user import Net

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    model(torch.zeros(1, 64)).sum().backward()
    optimizer.step()


def plain_one(task: tuple[int, int]) -> float:
    import numpy as np
    from own_loop_user import plain

    seed, epochs = task
    warm_up()
    features, labels = digits()
    order = np.random.default_rng(seed).permutation(len(labels))
    train = order[round(0.2 * len(labels)):]
    return plain(features[train], labels[train], seed, epochs=epochs)


def plain_side(runs: int, epochs: int, cores: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        seconds = pool.map(plain_one, [(seed, epochs) for seed in range(runs)])
    return time.perf_counter() - started, seconds


def reprogrid_side(runs: int, epochs: int, cores: int, workdir: Path) -> tuple[float, list[float]]:
    workdir.mkdir(parents=True)
    shutil.copy(HERE / "own_loop_user.py", workdir / "userloop.py")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config(runs, epochs)))
    wall = snakemake_grid(workdir, workdir / "config.yaml", cores)
    seconds = [json.loads(path.read_text())["train_seconds"]
               for path in sorted(workdir.glob("results/runs/*/*/*/train.json"))]
    if len(seconds) != runs:
        raise RuntimeError(f"{workdir}: {len(seconds)} of {runs} runs trained")
    return wall, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of a b b a")
    args = parser.parse_args()
    walls = {"plain": [], "reprogrid": []}
    loops = {"plain": [], "reprogrid": []}
    with tempfile.TemporaryDirectory(prefix="reprogrid-bench-own-loop-") as scratch:
        for attempt, side in enumerate(["plain", "reprogrid", "reprogrid", "plain"] * args.rounds):
            if side == "plain":
                wall, seconds = plain_side(args.runs, args.epochs, args.cores)
            else:
                wall, seconds = reprogrid_side(args.runs, args.epochs, args.cores, Path(scratch) / f"grid{attempt}")
            walls[side].append(round(wall, 2))
            loops[side].extend(round(s, 3) for s in seconds)
    median = {side: statistics.median(values) for side, values in loops.items()}
    print(json.dumps({
        "loop": "benchmarks/own_loop_user.py", "runs": args.runs, "epochs": args.epochs, "cores": args.cores,
        "rounds": args.rounds,
        "loop_seconds_median": {side: round(value, 3) for side, value in median.items()},
        "loop_ratio": round(median["reprogrid"] / median["plain"], 3),
        "loop_seconds_each": loops,
        "wall_seconds_each": walls,
        "wall_ratio": round(statistics.mean(walls["reprogrid"]) / statistics.mean(walls["plain"]), 3),
    }, indent=1))


if __name__ == "__main__":
    main()
