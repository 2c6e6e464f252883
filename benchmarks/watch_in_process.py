"""The watch's cost per training step, seen inside one process (benchmarks/watch_overhead.py
runs this and puts its JSON document under "in_process").

Two processes of the same script differ by up to a third in time per step on this
machine, more than the 3 % to be told apart, and one process drifts from minute to
minute. Here the classifier example runs in this one process (runpy, as `python
classify.py` would), `--runs` times, and its epochs take turns: in each block of four,
plain, watched, watched, plain. For a watched epoch the watch's per-step parts are on
(the seeding and drawing wrappers of Python, NumPy and torch; the optimizer step hooks
that fingerprint parameters and trace the generators on the schedule); for a plain one
they are off (the wrappers removed, the hooks passing at once). A block's ratio is its
watched epochs' CPU time over its plain ones' (the main thread's, one thread). Each run's
first block is left out: its first epoch holds the script's start-up too (an earlier
version kept it, and its placebo read the watch as saving 1.5 %). The step
hooks count plain steps too, so watched steps are fingerprinted and traced at the run's
own step numbers, as often as in a watched run. What runs once per process (the watch's
start-up: imports, seeding, the library configuration; its record at exit) is not in it:
watch_overhead.py's whole-process figures hold that.

`--parts` turns on only some of the watch in the watched epochs: `wrappers` (the seeding
and drawing wrappers), `hooks` (the step hooks), or `none`: a placebo, plain epochs
called watched, whose ratio shows what the method reads when there is nothing to find.

    python benchmarks/watch_in_process.py --epochs 20 --runs 20 [--parts all|wrappers|hooks|none]
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
TURNS = (False, True, True, False)  # watched? for the epochs of a block
# everything the watch's wrappers replace attributes of
PATCHED = (random, numpy.random, torch, torch.random, torch.cuda, torch.cuda.random, torch.nn.functional, torch.Tensor)


def set_attributes(attributes: dict) -> None:
    """Make every PATCHED owner's own attributes exactly `attributes[owner]`."""
    for owner, wanted in attributes.items():
        for name in set(vars(owner)) - set(wanted):
            delattr(owner, name)
        for name, value in wanted.items():
            if vars(owner).get(name) is not value:
                setattr(owner, name, value)


def _nothing(optimizer, args, kwargs) -> None:
    return None


class Turns:
    """The watch on and off by epochs, and each epoch's CPU time."""

    def __init__(self, record_dir: Path, parts: str = "all"):
        self.plain = {owner: dict(vars(owner)) for owner in PATCHED}
        journal = Journal(record_dir, 0)
        watch = Watch(journal)
        watch.install_python()
        watch.install_numpy(numpy)
        watch.install_torch(torch)
        self.watched = {owner: dict(vars(owner)) for owner in PATCHED}
        if parts in ("hooks", "none"):
            self.watched = self.plain
        set_attributes(self.plain)
        self.steps = StepWatch(journal)
        self.on, self.step, self.epoch = False, 0, 0
        self.started = time.thread_time()
        self.epochs: list[tuple[bool, float]] = []  # (watched, CPU seconds)
        # the timer first: an epoch's last step ends before the watch's hook of it would run
        self.handles = [register_optimizer_step_post_hook(self.after_step)]
        if parts in ("all", "hooks"):
            self.handles += [register_optimizer_step_pre_hook(self.gated(self.steps.before_step)),
                             register_optimizer_step_post_hook(self.gated(self.steps.after_step, self.count_step))]

    def gated(self, hook, otherwise=None):
        return lambda optimizer, args, kwargs: (hook if self.on else otherwise or _nothing)(optimizer, args, kwargs)

    def count_step(self, optimizer, args, kwargs) -> None:
        """A plain step counts too: the schedule sees the run's own step numbers."""
        self.steps.steps[self.steps.index(optimizer)] += 1

    def after_step(self, optimizer, args, kwargs) -> None:
        self.step += 1
        if self.step % STEPS_PER_EPOCH:
            return
        now = time.thread_time()
        self.epochs.append((self.on, now - self.started))
        self.epoch += 1
        self.on = TURNS[self.epoch % len(TURNS)]
        set_attributes(self.watched if self.on else self.plain)
        self.started = time.thread_time()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        set_attributes(self.plain)


def run_by_turns(epochs: int, work: Path, parts: str) -> list[tuple[bool, float]]:
    turns = Turns(work, parts)
    sys.argv = [str(SCRIPT), "--seed", "1", "--epochs", str(epochs), "--out", str(work / "out")]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        turns.remove()
    return turns.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--parts", choices=("all", "wrappers", "hooks", "none"), default="all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ratios, per_step = [], {"plain": [], "watched": []}
    with tempfile.TemporaryDirectory() as scratch:
        run_by_turns(1, Path(scratch), args.parts)  # a warm-up: first calls, caches
        for _ in range(args.runs):
            epochs = run_by_turns(args.epochs, Path(scratch), args.parts)
            # the first block is left out: its first plain epoch holds the script's start-up
            # (loading the digits, building the model), which would read as the watch saving time
            for start in range(len(TURNS), len(epochs) - len(TURNS) + 1, len(TURNS)):
                block = epochs[start:start + len(TURNS)]
                watched = sum(seconds for on, seconds in block if on)
                plain = sum(seconds for on, seconds in block if not on)
                ratios.append(watched / plain)
            for on, seconds in epochs[len(TURNS):]:
                per_step["watched" if on else "plain"].append(seconds / STEPS_PER_EPOCH)
    print(json.dumps({"parts": args.parts, "epochs": args.epochs, "runs": args.runs, "blocks": len(ratios),
                      "order": "plain, watched, watched, plain epochs", "ratios": ratios,
                      "cpu_seconds_per_step": per_step,
                      "median_cpu_seconds_per_step": {how: statistics.median(v) for how, v in per_step.items()},
                      "command": f"python benchmarks/watch_in_process.py --epochs {args.epochs} --runs {args.runs}"
                                 f" --parts {args.parts}"}))


if __name__ == "__main__":
    main()
