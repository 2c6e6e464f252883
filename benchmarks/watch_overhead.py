"""What watching a training script from inside costs (issue 30's target: at most 3 % per
training step on examples/scripts/classify.py with 20 epochs).

The same command is run plainly and with reprogrid's watch on (seeding and draw sites
journaled, optimizer fingerprints on the schedule, the library configuration applied,
final parameters and code hashed at exit), alternating, `--rounds` times each, both with
one thread and the same seeds. A timer on both runs' PYTHONPATH (benchmarks/step_timer)
notes when each optimizer step ends, on the wall clock and in the main thread's CPU time,
so the time per training step is read inside the process, apart from start-up (imports:
torch, its compiler stack the optimizer imports, scikit-learn, some 10 s here, which the
watch adds to by importing torch and NumPy first); the whole process is timed too.

    per-step overhead = median over rounds of (watched CPU s per step / plain CPU s per step) - 1

and, with less noise, the same measured inside one process (benchmarks/watch_in_process.py:
whole runs of the script taking turns, the watch's per-step parts on or off), under
"in_process"; under
"in_process_parts", the same with only the wrappers or only the step hooks on, and a
placebo (nothing on) that shows the method's own error;

where a run's CPU seconds per step is the main thread's CPU time from the first step's
end to the last's over the steps between (every step, fingerprinted ones included). With
one thread all of training and all of the watch run on the main thread, so its CPU time
holds both, without the time the process waited for a core (the wall-clock ratios are
recorded too: here they came out as noisy, processes differing in speed by up to a
third). Each round runs the two side by side.
Prints one JSON document.

    python benchmarks/watch_overhead.py --epochs 20 --rounds 15
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reprogrid import config as cfg
from reprogrid.watch import launch

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "scripts" / "classify.py"
STEPS_PER_EPOCH = 44  # 1400 training examples in batches of 32
PARTS = ("all", "wrappers", "hooks", "none")  # watch_in_process.py --parts


TIMER = Path(__file__).resolve().parent / "step_timer"


def timed(command: list[str], env: dict, cwd: Path) -> tuple[float, float, float]:
    """(whole process seconds, wall seconds per training step, main thread CPU seconds per step)."""
    times = cwd / "step_times.json"
    env = env | {"STEP_TIMES": str(times),
                 "PYTHONPATH": os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(TIMER)]))}
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    whole = time.perf_counter() - started
    ends = json.loads(times.read_text())
    steps = len(ends) - 1
    return whole, (ends[-1][0] - ends[0][0]) / steps, (ends[-1][1] - ends[0][1]) / steps


def median_interval(values: list[float], level: float = 0.95) -> list[float]:
    """A distribution-free interval for the median: order statistics k and n-k+1, with k the
    largest rank for which P(Binomial(n, 1/2) < k) <= (1 - level) / 2."""
    ordered, n = sorted(values), len(values)
    below = 0.0
    k = 0
    while below + math.comb(n, k) / 2**n <= (1 - level) / 2:
        below += math.comb(n, k) / 2**n
        k += 1
    return [ordered[k - 1], ordered[n - k]] if k else [ordered[0], ordered[-1]]


def in_process(epochs: int, parts: str, env: dict) -> dict:
    """watch_in_process.py's document for `parts`, with its median overhead and interval."""
    measured = json.loads(subprocess.run(
        [sys.executable, str(Path(__file__).with_name("watch_in_process.py")), "--epochs", str(epochs),
         "--blocks", "60", "--parts", parts], env=env, check=True, capture_output=True, text=True).stdout)
    measured["overhead"] = statistics.median(measured["ratios"]) - 1
    measured["overhead_interval_95"] = [r - 1 for r in median_interval(measured["ratios"])]
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        shutil.copy(SCRIPT, work / "classify.py")
        library = cfg.LIBRARY_DEFAULTS | {"threads": 1, "interop_threads": 1}
        plain_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="1")
        whole: dict[str, list[float]] = {"plain": [], "watched": []}
        per_step: dict[str, list[float]] = {"plain": [], "watched": []}
        cpu_per_step: dict[str, list[float]] = {"plain": [], "watched": []}
        command = [sys.executable, "classify.py", "--seed", "1", "--epochs", str(args.epochs), "--out", "out"]
        for round_ in range(args.rounds):
            record = work / f"watch-{round_}"
            record.mkdir()
            spec = record / "spec.json"
            spec.write_text(json.dumps({"record_dir": str(record), "library": library,
                                        "seeds": {"torch": 1, "numpy": 1, "python": 1}}))
            for how, env in (("plain", plain_env), ("watched", launch.environment(spec, 1))):
                seconds, step, cpu = timed(command, env, work)
                whole[how].append(seconds)
                per_step[how].append(step)
                cpu_per_step[how].append(cpu)
        parts = {part: in_process(args.epochs, part, plain_env) for part in PARTS}
    ratios = [watched / plain for plain, watched in zip(cpu_per_step["plain"], cpu_per_step["watched"])]
    wall_ratios = [watched / plain for plain, watched in zip(per_step["plain"], per_step["watched"])]
    median_step = {how: statistics.median(values) for how, values in per_step.items()}
    median_cpu = {how: statistics.median(values) for how, values in cpu_per_step.items()}
    median_whole = {how: statistics.median(values) for how, values in whole.items()}
    print(json.dumps({
        "script": "examples/scripts/classify.py", "epochs": args.epochs, "rounds": args.rounds,
        "steps": args.epochs * STEPS_PER_EPOCH, "threads": 1,
        "cpu_seconds_per_step": cpu_per_step, "seconds_per_step": per_step, "whole_process_seconds": whole,
        "median_cpu_seconds_per_step": median_cpu, "median_seconds_per_step": median_step,
        "median_whole_process_seconds": median_whole,
        "per_step_ratios": ratios, "per_step_overhead": statistics.median(ratios) - 1,
        "per_step_overhead_interval_95": [r - 1 for r in median_interval(ratios)],
        "per_step_wall_ratios": wall_ratios, "per_step_wall_overhead": statistics.median(wall_ratios) - 1,
        "whole_process_overhead": median_whole["watched"] / median_whole["plain"] - 1,
        "in_process": parts["all"],
        "in_process_parts": {part: parts[part] for part in PARTS if part != "all"},
        "target_per_step_overhead": 0.03,
        "command": f"python benchmarks/watch_overhead.py --epochs {args.epochs} --rounds {args.rounds}",
    }, indent=1))


if __name__ == "__main__":
    main()
