"""What watching a training script from inside costs (issue 30's target: at most 3 % per
training step on examples/scripts/classify.py with 20 epochs).

The same command is run plainly and with reprogrid's watch on (seeding and draw sites
journaled, optimizer fingerprints on the schedule, the library configuration applied,
final parameters and code hashed at exit), alternating, `--rounds` times each, both with
one thread and the same seeds. Each is run with `--epochs 0` too, so that start-up (the
watch imports torch and NumPy before the script, which imports them anyway) is told apart
from the per-step cost:

    per-step overhead = (watched(E) - watched(0)) / (plain(E) - plain(0)) - 1

Medians over rounds. Prints one JSON document.

    python benchmarks/watch_overhead.py --epochs 20 --rounds 5
"""

from __future__ import annotations

import argparse
import json
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


def timed(command: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        shutil.copy(SCRIPT, work / "classify.py")
        library = cfg.LIBRARY_DEFAULTS | {"threads": 1, "interop_threads": 1}
        plain_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="1")
        times: dict[str, list[float]] = {f"{how}_{e}": [] for how in ("plain", "watched") for e in (0, args.epochs)}
        for round_ in range(args.rounds):
            for epochs in (0, args.epochs):
                command = [sys.executable, "classify.py", "--seed", "1", "--epochs", str(epochs), "--out", "out"]
                times[f"plain_{epochs}"].append(timed(command, plain_env, work))
                record = work / f"watch-{round_}-{epochs}"
                record.mkdir()
                spec = record / "spec.json"
                spec.write_text(json.dumps({"record_dir": str(record), "library": library,
                                            "seeds": {"torch": 1, "numpy": 1, "python": 1}}))
                times[f"watched_{epochs}"].append(timed(command, launch.environment(spec, 1), work))
    median = {name: statistics.median(values) for name, values in times.items()}
    plain_training = median[f"plain_{args.epochs}"] - median["plain_0"]
    watched_training = median[f"watched_{args.epochs}"] - median["watched_0"]
    print(json.dumps({
        "script": "examples/scripts/classify.py", "epochs": args.epochs, "rounds": args.rounds,
        "steps": args.epochs * STEPS_PER_EPOCH, "threads": 1,
        "seconds": times, "median_seconds": median,
        "per_step_overhead": watched_training / plain_training - 1,
        "whole_process_overhead": median[f"watched_{args.epochs}"] / median[f"plain_{args.epochs}"] - 1,
        "start_up_seconds_added": median["watched_0"] - median["plain_0"],
        "target_per_step_overhead": 0.03,
        "command": f"python benchmarks/watch_overhead.py --epochs {args.epochs} --rounds {args.rounds}",
    }, indent=1))


if __name__ == "__main__":
    main()
