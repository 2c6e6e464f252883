"""`reprogrid diverge RUN_A RUN_B`: where two runs part, from the epoch down to the operation.

Working from the two runs' MLflow records alone (like replay):
1. the epoch: the first whose recorded weight fingerprint differs (0: the initial weights);
2. the step and phase: both runs re-executed, each in a process of its own, up to that
   epoch with per-step fingerprints (reprogrid.watch.probe: a step is an optimizer step, so a
   fit's own loop and DataLoader are seen as the built-in ones); the first step whose
   `input`, `forward`, `backward` or `optimizer` fingerprint differs;
3. the operation: both re-executed again with every ATen op of that one step recorded
   from its beginning (name, module, shapes, dtypes, a digest of every input and output,
   the generator a random op drew from), the two streams aligned (extra or missing ops
   tolerated) and the first op whose output differs found;
4. the cause: `initialization`, `input`, `random_op`, `nondeterministic_op` or
   `implementation`, with the generator or source behind it (the generator the random op
   drew from, the seeds, the runs' RNG traces). Only a cause that was observed is named:
   `nondeterministic_op` for an op that gave different outputs from identical inputs, or
   a run re-executed twice that differed from itself; where nothing was observed, the
   result says "could not localise: ..." and names no cause.

The op streams are written as files (`--streams DIR`), so that streams of runs from
different machines or versions can be compared. Runs whose training drew from an
unseeded generator are re-executed with new draws: their divergence is localised in
kind (which phase, which generator), not in the original bits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from reprogrid.analysis.divergence import first_divergent_epoch
from reprogrid.investigate.causes import (
    differing_source,
    first_differing_step,
    not_localised,
    result,
    root_cause,
    same_library,
    what_differs,
)
from reprogrid.record import mlflow_runs
from reprogrid.record import mlflow_store as tracking
from reprogrid.record.sealed import write_atomically


class DivergeError(RuntimeError):
    """The localisation could not be attempted (unknown run, unreadable record)."""


def load_record(client, run_id: str) -> dict:
    from reprogrid.investigate.replay import recorded_numerics_env, recorded_seeds

    run = mlflow_runs.run_summary(client, run_id)
    if run["tags"].get("reprogrid.kind") not in ("run", "replay"):
        raise DivergeError(f"run {run_id} is not a reprogrid grid run")
    train = mlflow_runs.load_json_artifact(client, run_id, "train.json")
    recorded = run["tags"].get("reprogrid.workdir")
    return {"run_id": run_id, "tags": run["tags"], "train": train, "run_config": train["run_config"],
            "seeds": recorded_seeds(run, train), "env_vars": recorded_numerics_env(client, run_id),
            "workdir": recorded if recorded and Path(recorded).is_dir() else os.getcwd()}


def record_from_files(run_dir: str | Path) -> dict:
    """The same record as `load_record`, from a run's sealed files (compare's way)."""
    from reprogrid.record.sealed import read_sealed

    run_dir = Path(run_dir)
    train, evaluation = read_sealed(run_dir / "train.json"), read_sealed(run_dir / "eval.json")
    tags = {"reprogrid.libconf": train["run_config"]["libconf"], "reprogrid.hash.library": train["hashes"]["library"],
            "reprogrid.hash.predictions": evaluation["hashes"]["predictions"]}
    workdir = train.get("workdir")
    return {"run_id": evaluation.get("mlflow_run_id") or train["run_key"], "tags": tags, "train": train,
            "run_config": train["run_config"], "seeds": train["seeds"],
            "env_vars": train["library_effective"].get("env_vars", {}),
            "workdir": workdir if workdir and Path(workdir).is_dir() else os.getcwd()}


def probe_both(records: list[dict], epoch: int, op_step: int | None, scratch: Path) -> list[dict]:
    """Re-execute both runs at once, each in a fresh process (python -m reprogrid.investigate.diverge
    --probe), and return what each probe saw."""
    processes = []
    for index, record in enumerate(records):
        request = scratch / f"request{index}.json"
        request.write_text(json.dumps({"run_config": record["run_config"], "seeds": record["seeds"],
                                       "env_vars": record["env_vars"], "workdir": record["workdir"],
                                       "epoch": epoch, "op_step": op_step}))
        out = scratch / f"probe{index}-{op_step}.json"
        processes.append((subprocess.Popen([sys.executable, "-m", "reprogrid.investigate.diverge", "--probe", str(request),
                                            str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                           text=True, env=os.environ | {"REPROGRID_WARM_WORKERS": "0"}), out))
    results = []
    for process, out in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise DivergeError(f"re-executing a run failed: {stderr.strip().splitlines()[-1] if stderr else ''}")
        results.append(json.loads(out.read_text()))
    return results


def localise(records: list[dict], streams: Path) -> dict:
    a, b = (r["train"] for r in records)
    keys = f"{records[0]['run_config']['run_key']} and {records[1]['run_config']['run_key']}"
    different = what_differs(records)
    if different:  # not one training under two conditions: nothing to localise
        return result(True, detail=f"{different}: {keys} train different things, so where they part says "
                                   "nothing about randomness")
    if "command" in a:  # by optimizer step, re-running the commands
        from reprogrid.investigate.command_diverge import localise_command

        with tempfile.TemporaryDirectory(prefix="reprogrid-diverge-") as scratch:
            return localise_command(records, streams, Path(scratch))
    epoch = first_divergent_epoch(a["hashes"]["init_weights"], [e["weights"] for e in a["epochs"]],
                                  b["hashes"]["init_weights"], [e["weights"] for e in b["epochs"]])
    if epoch is None:
        if records[0]["tags"].get("reprogrid.hash.predictions") == records[1]["tags"].get("reprogrid.hash.predictions"):
            return result(False, detail=f"{keys} have identical weights after every epoch and identical predictions")
        if "evaluation" in records[0]["run_config"] and any(a["seeds"][s] != b["seeds"][s] for s in a["seeds"]):
            return not_localised(f"{keys} end with identical weights but different test predictions, from an own "
                                 "evaluation that may draw from the run's streams, whose seeds differ")
        return result(True, "implementation" if not same_library(records) else "nondeterministic_op",
                      detail=f"{keys} end with identical weights but different test predictions: evaluation differs")
    if epoch == 0:
        source = differing_source(records, "init", "ulp")
        generator = source or next(iter(a.get("rng", {}).get("init", [])), None)
        why = f"their `{source}` seeds differ" if source else "although built under the same seeds"
        return result(True, "initialization", generator, f"the initial weights of {keys} differ ({why})",
                      epoch=0, phase="init")
    with tempfile.TemporaryDirectory(prefix="reprogrid-diverge-") as scratch:
        scratch = Path(scratch)
        steps = probe_both(records, epoch, None, scratch)
        if not any(probe["steps"] for probe in steps):
            return not_localised(f"the runs part in epoch {epoch}, but re-executed their loop takes no optimizer step "
                                 "(torch.optim) in it, so its steps cannot be told apart", epoch)
        found = first_differing_step(steps[0]["steps"], steps[1]["steps"])
        if found is None:
            return did_it_repeat(records, steps, epoch, scratch)
        step, phase = found
        ops = probe_both(records, epoch, step, scratch)
    streams.mkdir(parents=True, exist_ok=True)
    for record, stream in zip(records, ops):
        text = json.dumps(stream["ops"], indent=0)
        write_atomically(streams / f"{record['run_id']}.ops.json", lambda partial, text=text: partial.write_text(text))
    return root_cause(records, ops, epoch, step, phase)


def did_it_repeat(records: list[dict], steps: list[dict], epoch: int, scratch: Path) -> dict:
    """Every step of `epoch` fingerprints the same in both re-executions although the
    records part there: re-execute both again, and say what was seen."""
    again = probe_both(records, epoch, None, scratch)
    for record, first, second in zip(records, steps, again):
        found = first_differing_step(first["steps"], second["steps"])
        if found is not None:
            return result(True, "nondeterministic_op", detail=(
                f"re-executed twice, {record['run_config']['run_key']} differed from itself at step {found[0]} of "
                f"epoch {epoch} ({found[1]}): the difference does not repeat"), epoch=epoch, step=found[0],
                phase=found[1])
    stray = [r["run_config"]["run_key"] for r, probe in zip(records, steps)
             if probe["epoch_weights"] != r["train"]["epochs"][epoch - 1]["weights"]]
    if stray:
        return not_localised(f"re-executed here, {' and '.join(stray)} did not reproduce the recorded weights of "
                             f"epoch {epoch} (twice alike): the records were made under conditions this re-execution "
                             "does not repeat (another machine or software)", epoch)
    return not_localised(f"every step of epoch {epoch} fingerprints the same in both runs, yet their weights after it "
                         "differ: the difference is in what step fingerprints do not cover (buffers, or weights "
                         "changed outside an optimizer step)", epoch)


def diverge(run_a: str, run_b: str, tracking_uri: str, streams: str | Path | None = None) -> dict:
    client = tracking.existing_store_client(tracking_uri)
    records = [load_record(client, run_id) for run_id in (run_a, run_b)]
    streams = Path(streams or Path.cwd() / "diverge" / f"{run_a[:8]}-{run_b[:8]}")
    return localise(records, streams) | {"runs": [run_a, run_b]}


DIVERGENCE_COLUMNS = ["setting", "libconf", "run_a", "run_b", "diverged", "epoch", "step", "phase", "op", "module",
                      "cause", "generator", "detail"]


def pairs_to_localise(runs: list, reference_libconf: str) -> list[tuple]:
    """One pair of runs per cell whose replicates differ (its first two), and one per cell
    whose runs are bitwise among themselves but differ from the same replicate, same
    seeds, under the reference library configuration."""
    by_cell: dict[tuple[str, str, str], list] = {}  # (setting, libconf, variant): a variant's runs are a grid
    for run in sorted(runs, key=lambda r: r.replicate):
        by_cell.setdefault((run.setting, run.libconf, run.variant), []).append(run)
    pairs = []
    for (setting, libconf, variant), cell in by_cell.items():
        if len({r.weights for r in cell}) > 1 or len({r.predictions for r in cell}) > 1:
            pairs.append((setting, libconf, cell[0], cell[1]))
            continue
        reference = by_cell.get((setting, reference_libconf, variant))
        if libconf != reference_libconf and reference and reference[0].weights != cell[0].weights \
                and len({r.weights for r in reference}) == 1:
            pairs.append((setting, libconf, reference[0], cell[0]))
    return pairs


def localise_grid(runs: list, run_dirs: dict, reference_libconf: str, streams: Path) -> list[dict]:
    """Localise every pair `pairs_to_localise` picks; rows of divergence.csv."""
    rows = []
    for setting, libconf, a, b in pairs_to_localise(runs, reference_libconf):
        records = [record_from_files(run_dirs[run.key]) for run in (a, b)]
        try:
            found = localise(records, streams / f"{a.key}-{b.key}".replace("/", "_"))
        except DivergeError as error:
            found = not_localised(str(error))
        rows.append({"setting": setting, "libconf": libconf, "run_a": a.key, "run_b": b.key}
                    | {k: found[k] for k in DIVERGENCE_COLUMNS[4:]})
    return rows


def render(found: dict) -> str:
    if not found["diverged"]:
        return f"no divergence: {found['detail']}"
    where = ([f"epoch {found['epoch']}"] if found["epoch"] is not None else []) + (
        [f"step {found['step']}"] if found["step"] is not None and (found["step"] or found["epoch"] is None) else [])
    where += [found["phase"]] if found["phase"] else []
    lines = [f"diverged at {', '.join(where)}",
             f"cause: {found['cause']}" + (f" (generator: {found['generator']})" if found["generator"] else "")]
    if found["op"]:
        lines.append(f"op: {found['op']}" + (f" in module {found['module']}" if found["module"] else ""))
    lines.append(found["detail"])
    return "\n".join(lines)


def _probe_main(request_path: str, out_path: str) -> int:
    """A re-execution, in this fresh process: the run's numerics variables first, then torch."""
    from reprogrid.record.envvars import restore_recorded_env_vars, size_thread_pools

    request = json.loads(Path(request_path).read_text())
    restore_recorded_env_vars(request["env_vars"])
    size_thread_pools()
    os.chdir(request["workdir"])
    from reprogrid.investigate.probed_run import probe_run

    Path(out_path).write_text(json.dumps(probe_run(request)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        sys.exit(_probe_main(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m reprogrid.investigate.diverge --probe REQUEST.json OUT.json (reprogrid diverge's own use)")
