"""The watch's cost per training step, seen inside one process (benchmarks/watch_overhead.py
runs this and puts its JSON document under "in_process").

Two processes of the same script differ by up to a third in time per step on this
machine, more than the 3 % to be told apart, and one process drifts from minute to
minute. Here the classifier example runs whole in this one process (runpy, as `python
classify.py` would), again and again, and the runs take turns: in each block of four,
plain, watched, watched, plain. A watched run has the watch's per-step parts on, fresh
as in a new process (the seeding and drawing wrappers of Python, NumPy and torch; the
optimizer step hooks that fingerprint parameters and trace the generators on the
schedule); a plain run has none of it. A run's time is the main thread's CPU time (one
thread) from its first optimizer step to its last, so every step counts as in a real
run: the early steps, each fingerprinted, and the later, sparser ones. A block's ratio
is its watched runs' time over its plain ones'. What runs once per process (the watch's
start-up: imports, seeding, the library configuration; its record at exit) and the
script's own start-up are not in it: watch_overhead.py's whole-process figures hold that.

(An earlier version took turns by epochs within a run. Its first block held the script's
start-up, so its placebo read the watch as saving 1.5 %; and leaving that block out left
out the early steps, where the watch fingerprints every step.)

`--parts` turns on only some of the watch in the watched runs: `wrappers` (the seeding
and drawing wrappers), `hooks` (the step hooks), or `none`: a placebo, plain runs called
watched, whose ratio shows what the method reads when there is nothing to find.

    python benchmarks/watch_in_process.py --epochs 20 --blocks 40 [--parts all|wrappers|hooks|none]
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
STEPS_PER_EPOCH = 44  # 1400 training examples in batches of 32
TURNS = (False, True, True, False)  # watched? for the runs of a block
# everything the watch's wrappers replace attributes of
PATCHED = (random, numpy.random, torch, torch.random, torch.cuda, torch.cuda.random, torch.nn.functional, torch.Tensor,
           torch.optim.Optimizer)


def set_attributes(attributes: dict) -> None:
    """Make every PATCHED owner's own attributes exactly `attributes[owner]`."""
    for owner, wanted in attributes.items():
        for name in set(vars(owner)) - set(wanted):
            delattr(owner, name)
        for name, value in wanted.items():
            if vars(owner).get(name) is not value:
                setattr(owner, name, value)


class Timer:
    """The main thread's CPU time from the first optimizer step's start to the last's end.
    Its hooks come first, so a watched run's own hooks of a step are inside the span."""

    def __init__(self):
        self.first = self.last = None
        self.handles = [register_optimizer_step_pre_hook(self.started),
                        register_optimizer_step_post_hook(self.ended)]

    def started(self, optimizer, args, kwargs) -> None:
        if self.first is None:
            self.first = time.thread_time()

    def ended(self, optimizer, args, kwargs) -> None:
        self.last = time.thread_time()

    def seconds(self) -> float:
        for handle in self.handles:
            handle.remove()
        return self.last - self.first


def run(epochs: int, work: Path, watched: bool, parts: str) -> float:
    """One run of the script; its CPU seconds from first step to last."""
    plain = {owner: dict(vars(owner)) for owner in PATCHED}
    timer = Timer()
    handles = []
    if watched and parts != "none":
        journal = Journal(work, 0)
        if parts in ("all", "wrappers"):
            watch = Watch(journal)
            watch.install_python()
            watch.install_numpy(numpy)
            watch.install_torch(torch)
        if parts in ("all", "hooks"):
            handles = StepWatch(journal).install(torch)
    sys.argv = [str(SCRIPT), "--seed", "1", "--epochs", str(epochs), "--out", str(work / "out")]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        for handle in handles:
            handle.remove()
        set_attributes(plain)
        seconds = timer.seconds()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--parts", choices=("all", "wrappers", "hooks", "none"), default="all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = args.epochs * STEPS_PER_EPOCH
    ratios, per_step = [], {"plain": [], "watched": []}
    with tempfile.TemporaryDirectory() as scratch:
        for watched in TURNS:  # a warm-up block: first calls, caches
            run(args.epochs, Path(scratch), watched, args.parts)
        for _ in range(args.blocks):
            block = [(watched, run(args.epochs, Path(scratch), watched, args.parts)) for watched in TURNS]
            ratios.append(sum(s for on, s in block if on) / sum(s for on, s in block if not on))
            for on, seconds in block:
                per_step["watched" if on else "plain"].append(seconds / (steps - 1))
    print(json.dumps({"parts": args.parts, "epochs": args.epochs, "steps": steps, "blocks": len(ratios),
                      "runs": len(ratios) * len(TURNS), "order": "plain, watched, watched, plain runs",
                      "ratios": ratios, "cpu_seconds_per_step": per_step,
                      "median_cpu_seconds_per_step": {how: statistics.median(v) for how, v in per_step.items()},
                      "command": f"python benchmarks/watch_in_process.py --epochs {args.epochs} --blocks {args.blocks}"
                                 f" --parts {args.parts}"}))


if __name__ == "__main__":
    main()
