"""`reprogrid diverge` for two training.command runs: where they part, from the optimizer
step down to the operation, by re-running both commands with the probe in the watch.

1. the step: the first whose recorded parameter fingerprint differs (0: the parameters
   before the first step, the initial weights); steps past the first 64 are recorded
   sparser, so it is exact early on and the end of an interval later;
2. the step and phase: both commands re-run (recorded seeds, library, numerics variables,
   hash seed, from the recorded working directory) with every optimizer step up to that
   one fingerprinted (`input`, `forward`, `backward`, `optimizer`: reprogrid.watch.probe),
   each re-run ended right after it;
3. the operation: both re-run again with every ATen op of that step recorded, from the
   end of the step before (step 1: from the script's first line), and the first op whose
   output differs found (reprogrid.investigate.causes, as for reprogrid's own runs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from reprogrid.analysis.divergence import first_divergent_step
from reprogrid.command.run import HASH_SEED_MAX
from reprogrid.investigate.causes import (
    differing_source,
    first_differing_step,
    not_localised,
    result,
    root_cause,
)
from reprogrid.investigate.replay import step_fingerprints
from reprogrid.record.envvars import CAPABILITY_ENV, check_capability
from reprogrid.record.sealed import write_json

SOURCES_OF_TORCH = ("script", "torch")  # what seeds torch's generator in a command run


class ReexecutionFailed(RuntimeError):
    """A command's re-execution failed or ended before the step asked for."""


def localise_command(records: list[dict], streams: Path, scratch: Path) -> dict:
    """Where two runs of one command, which train the same thing (diverge.localise checked), part."""
    a, b = (r["train"] for r in records)
    keys = f"{records[0]['run_config']['run_key']} and {records[1]['run_config']['run_key']}"
    step = first_divergent_step(step_fingerprints(a), step_fingerprints(b))
    if step is None:
        if a["hashes"]["weights"] == b["hashes"]["weights"] and (
                records[0]["tags"].get("reprogrid.hash.predictions") == records[1]["tags"].get("reprogrid.hash.predictions")):
            return result(False, detail=f"{keys} have identical parameters after every recorded optimizer step, "
                                        "and identical final weights and predictions")
        return not_localised(f"{keys} have identical parameters after every recorded optimizer step, but their final "
                             "weights or predictions differ: the difference arises after the last recorded step or "
                             "outside the optimizers' steps")
    if step == 0:
        source = differing_source(records, *SOURCES_OF_TORCH)
        why = f"their `{source}` seeds differ" if source else "although run under the same seeds"
        return result(True, "initialization", "torch", f"the parameters of {keys} differ before the first "
                      f"optimizer step ({why})", step=0, phase="init")
    try:
        steps = reexecute_both(records, step, None, scratch)
        found = first_differing_step(steps[0]["steps"], steps[1]["steps"])
        if found is None:
            return not_localised(f"the recorded parameters part at step {step}, but re-run here both commands take "
                                 f"identical steps up to it: the difference did not repeat (a draw not recorded, an op "
                                 "that is not deterministic, or another machine)", step=step)
        op_step, phase = found
        ops = reexecute_both(records, op_step, op_step, scratch)
    except ReexecutionFailed as error:
        return not_localised(str(error), step=step)
    streams.mkdir(parents=True, exist_ok=True)
    for record, stream in zip(records, ops):
        write_json(streams / f"{record['run_id'].replace('/', '_')}.ops.json", stream["ops"])  # an id or a run key
    return root_cause(records, ops, None, op_step, phase)


def reexecute_both(records: list[dict], until: int, op_step: int | None, scratch: Path) -> list[dict]:
    """Re-run both commands at once, the probe in their watch; what each saw."""
    from reprogrid.watch import launch

    for record in records:  # a CPU capability this CPU cannot run: before anything starts
        try:
            check_capability((record["env_vars"].get(CAPABILITY_ENV) or "default").lower())
        except ValueError as error:
            raise ReexecutionFailed(f"{record['run_config']['run_key']} cannot be re-run here: {error}") from None
    started = []
    for index, record in enumerate(records):
        work = scratch / f"run{index}-{until}-{op_step}"
        shutil.rmtree(work, ignore_errors=True)
        (work / "output").mkdir(parents=True)
        seeds, run_config = record["seeds"], record["run_config"]
        probe = {"until": until, "op_step": op_step, "out": str(work / "probe.json")}
        write_json(work / "spec.json", {"record_dir": str(work), "library": run_config["library"], "probe": probe,
                                        "seeds": {g: seeds[g] for g in ("torch", "numpy", "python")}})
        command = launch.filled(run_config["training"]["command"], seeds["script"], work / "output",
                                run_config["replicate"], run_config["training"].get("args"))
        env = launch.environment(work / "spec.json", seeds["hash"] % HASH_SEED_MAX, record["env_vars"])
        with (work / "command.log").open("wb") as log:
            started.append((record, work, subprocess.Popen(
                command, shell=True, cwd=record["workdir"], env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)))
    failures, seen = [], []
    for record, work, process in started:
        key, timeout = record["run_config"]["run_key"], record["run_config"]["training"].get("timeout_s")
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            failures.append(f"re-running {key}'s command ran past training.timeout_s ({timeout:g} s)")
            continue
        probe = json.loads((work / "probe.json").read_text()) if (work / "probe.json").is_file() else None
        if probe is None:
            failures.append(f"re-running {key}'s command failed (status {status}): "
                            f"{launch.last_lines(work / 'command.log')}")
        elif probe["ended"]:
            failures.append(f"re-run here, {key}'s command ended before optimizer step {until}")
        seen.append(probe)
    if failures:
        raise ReexecutionFailed("; ".join(failures))
    return seen
