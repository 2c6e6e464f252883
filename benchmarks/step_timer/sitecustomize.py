"""benchmarks/watch_overhead.py's timer, put on a script's PYTHONPATH in both the plain and
the watched run (after reprogrid's watch, which runs the sitecustomize it shadows): at every
optimizer step's end (torch's global step hook), the wall clock and the main thread's CPU
time, written at exit to the file $STEP_TIMES as [[wall, cpu], ...]. Its own cost is the
same in both runs."""

import atexit
import json
import os
import time

if os.environ.get("STEP_TIMES"):
    from torch.optim.optimizer import register_optimizer_step_post_hook

    _ends: list[list[float]] = []
    register_optimizer_step_post_hook(
        lambda optimizer, args, kwargs: _ends.append([time.perf_counter(), time.thread_time()]))
    atexit.register(lambda: open(os.environ["STEP_TIMES"], "w").write(json.dumps(_ends)))
