"""The watch's cost per training step, seen inside one process (benchmarks/watch_overhead.py
runs this and puts its JSON document under "in_process").

Two processes of the same script differ by up to a third in time per step on this
machine, more than the 3 % to be told apart. Here the classifier example runs again and
again in this one process (runpy, as `python classify.py` would), alternately plain and
with the watch's per-step parts installed (the seeding and drawing wrappers of Python,
NumPy and torch; the optimizer step hooks that fingerprint parameters and trace the
generators on the schedule), in the order plain, watched, watched, plain per round, and
then uninstalled again. The time per step is the main thread's CPU time between the
first and the last optimizer step's end (one thread). What runs once per process (the
watch's start-up: imports, seeding, the library configuration; its record at exit) is
not in it: the whole-process figures of watch_overhead.py hold that.

    python benchmarks/watch_in_process.py --epochs 20 --rounds 8
"""

from __future__ import annotations

import argparse
import json
import random
import runpy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy
import torch
import torch.nn.functional
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from reprogrid.watch.journal import Journal
from reprogrid.watch.seeding import Watch
from reprogrid.watch.steps import StepWatch

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "scripts" / "classify.py"
# everything the watch's wrappers replace attributes of
PATCHED = (random, numpy.random, torch, torch.random, torch.cuda, torch.cuda.random, torch.nn.functional, torch.Tensor)


def installed(record_dir: Path):
    """Install the watch's per-step parts; return a function that removes them again."""
    saved = {owner: dict(vars(owner)) for owner in PATCHED}
    journal = Journal(record_dir, 0)
    watch = Watch(journal)
    watch.install_python()
    watch.install_numpy(numpy)
    watch.install_torch(torch)
    steps = StepWatch(journal)
    handles = [register_optimizer_step_pre_hook(steps.before_step),
               register_optimizer_step_post_hook(steps.after_step)]

    def remove() -> None:
        for handle in handles:
            handle.remove()
        for owner, attributes in saved.items():
            for name in set(vars(owner)) - set(attributes):
                delattr(owner, name)
            for name, value in attributes.items():
                if vars(owner).get(name) is not value:
                    setattr(owner, name, value)
    return remove


def cpu_per_step(epochs: int, out: Path) -> float:
    ends: list[float] = []
    handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: ends.append(time.thread_time()))
    sys.argv = [str(SCRIPT), "--seed", "1", "--epochs", str(epochs), "--out", str(out)]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        handle.remove()
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {"plain": [], "watched": []}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        cpu_per_step(1, work)  # a warm-up: first calls, caches
        for how in ("plain", "watched", "watched", "plain") * args.rounds:
            remove = installed(work) if how == "watched" else None
            times[how].append(cpu_per_step(args.epochs, work / "out"))
            if remove:
                remove()
    # per round: the mean of its two watched runs over the mean of its two plain ones
    ratios = [(times["watched"][2 * r] + times["watched"][2 * r + 1]) / (times["plain"][2 * r] + times["plain"][2 * r + 1])
              for r in range(args.rounds)]
    print(json.dumps({"epochs": args.epochs, "rounds": args.rounds, "order": "plain, watched, watched, plain",
                      "cpu_seconds_per_step": times, "ratios": ratios,
                      "median_cpu_seconds_per_step": {how: statistics.median(v) for how, v in times.items()},
                      "command": f"python benchmarks/watch_in_process.py --epochs {args.epochs} "
                                 f"--rounds {args.rounds}"}))


if __name__ == "__main__":
    main()
