"""Run one step of the workflow: `python reprogrid/workflow/scripts/step.py STEP LOG NAME=VALUE NAME:=JSON ...`.

Every rule runs through here: its inputs, outputs and params become keyword arguments
of the step's function (`reprogrid.jobs.registry`; `NAME=VALUE` a string such as a path,
`NAME:=JSON` a JSON value), and its log file gets the step's log. Steps that need
torch or MLflow go to a warm worker when the workflow started one (`reprogrid.jobs.warm_client`)
and can use it, and run in this process otherwise. This module imports nothing heavy.
"""

from __future__ import annotations

import json
import os
import sys

from reprogrid.jobs.registry import STEPS, execute
from reprogrid.jobs.runlock import RunLocked
from reprogrid.record import provenance  # noqa: F401 - first: the code this job runs is stamped as it starts

# `run_key=KEY`: the run whose lock the step holds; not an argument of the step itself
RUN_KEY_ARGUMENT = "run_key"
# `cpu_capability=avx2`: torch's CPU kernels for this step, set before torch loads (a warm
# server, whose torch has chosen already, then declines the job); empty: as torch picks
CAPABILITY_ARGUMENT = "cpu_capability"


class StepFailed(RuntimeError):
    """A step failed in a warm worker or a process of its own; the message is its
    traceback there."""

    @property
    def reason(self) -> str:
        """The exception's own message: the traceback's last line, without its class."""
        lines = [line for line in str(self).splitlines() if line.strip()]
        if not lines:
            return "the step failed without a message"
        kind, separator, message = lines[-1].partition(": ")
        is_exception_line = separator and " " not in kind  # `package.module.SomeError: message`
        return message if is_exception_line else lines[-1]


def run(step: str, kwargs: dict, log_path: str, run_key: str | None = None) -> None:
    """Run a step in a warm worker when the workflow started one, else in this process.
    A step of one run holds that run's lock throughout (reprogrid.jobs.runlock), shared with
    the warm child doing the work."""
    from reprogrid.jobs import runlock, warm_client

    lock = runlock.acquire(run_key) if run_key else None
    try:
        outcome = warm_client.run_remote(step, kwargs, log_path, lock)
        if outcome is not None:
            if not outcome["ok"]:
                raise StepFailed(outcome["error"])
            return
        execute(step, kwargs, log_path)
    finally:
        if lock is not None:
            os.close(lock)


def run_fresh(step: str, kwargs: dict, log_path: str) -> None:
    """Run a step in a new Python process of its own, whatever warm server is about: for
    a step that should overlap with the server's own imports instead of waiting for them."""
    import subprocess  # not for every job's thin client

    command = [sys.executable, "-m", "reprogrid.jobs.runner", step, log_path,
               *(f"{name}:={json.dumps(value)}" for name, value in kwargs.items())]
    done = subprocess.run(command, env=os.environ | {"REPROGRID_WARM_WORKERS": "0"}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise StepFailed(done.stderr.strip() or f"step {step} exited with status {done.returncode}")


def parse_arguments(items: list[str]) -> dict:
    """`name=text` and `name:=json` pairs as keyword arguments."""
    kwargs = {}
    for item in items:
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise ValueError(f"expected NAME=VALUE or NAME:=JSON, got {item!r}")
        if name.endswith(":"):
            kwargs[name[:-1]] = json.loads(value)
        else:
            kwargs[name] = value
    return kwargs


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in STEPS:
        print(f"usage: step.py {{{'|'.join(STEPS)}}} LOG [run_key=KEY] NAME=VALUE NAME:=JSON ...", file=sys.stderr)
        return 2
    kwargs = parse_arguments(argv[2:])
    capability = kwargs.pop(CAPABILITY_ARGUMENT, None)
    if capability:
        from reprogrid.record.envvars import CAPABILITY_ENV

        os.environ[CAPABILITY_ENV] = capability
    try:
        run(argv[0], kwargs, argv[1], kwargs.pop(RUN_KEY_ARGUMENT, None))
    except (StepFailed, RunLocked) as failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
