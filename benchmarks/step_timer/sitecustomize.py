"""benchmarks/watch_overhead.py's timer, put on a script's PYTHONPATH in both the plain and
the watched run (after reprogrid's watch, which runs the sitecustomize it shadows): the
time of every optimizer step's end, through torch's global step hook, written at exit to
the file $STEP_TIMES. Its own cost is the same in both runs."""

import atexit
import json
import os
import time

if os.environ.get("STEP_TIMES"):
    from torch.optim.optimizer import register_optimizer_step_post_hook

    _ends: list[float] = []
    register_optimizer_step_post_hook(lambda optimizer, args, kwargs: _ends.append(time.perf_counter()))
    atexit.register(lambda: open(os.environ["STEP_TIMES"], "w").write(json.dumps(_ends)))
