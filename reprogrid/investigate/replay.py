"""Replay one run from its MLflow record alone and compare every hash, bit for bit.

The resolved run config, the seeds and the numerics-relevant environment variables
(thread counts that Snakemake sets per job, for one) come from the run's own record
(its run_config.json, train.json and env.json artifacts, checked against its params),
never from `results/`. The run is re-executed through the workflow's own code path
(`steps.train.run_train`, `steps.evaluate.run_evaluate`) in a scratch directory and
recorded as a run of kind `replay` in the original's experiment.

Verdicts: `bitwise` (every hash equal); `diverged` (inputs equal, outputs differ: the
first epoch whose weights differ is named); `inputs changed` (the code, environment,
data, config or seed derivation differ: named, and the outputs are still compared).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reprogrid.analysis.divergence import first_divergent_epoch, first_divergent_step
from reprogrid.config.seeds import derive_seeds
from reprogrid.record import mlflow_runs
from reprogrid.record import mlflow_store as tracking
from reprogrid.record.envvars import restore_recorded_env_vars, size_thread_pools
from reprogrid.record.sealed import write_json

INPUTS = ("data", "config", "code", "env", "library")
log = logging.getLogger("reprogrid")
OUTPUTS = ("init_weights", "weights", "predictions")


class ReplayError(RuntimeError):
    """The replay could not be attempted (unknown run, unreachable store, bad record)."""


@dataclass
class Comparison:
    original: dict
    replayed: dict
    changed_inputs: list[str] = field(default_factory=list)
    first_divergent_epoch: int | None = None
    epochs_compared: int = 0
    first_divergent_step: int | None = None  # a training.command run's (reprogrid.watch.steps)
    steps_compared: int | None = None
    notes: list[str] = field(default_factory=list)  # what differs about the replay, in words

    @property
    def outputs_equal(self) -> bool:
        return (all(self.original[h] == self.replayed[h] for h in OUTPUTS) and self.first_divergent_epoch is None
                and self.first_divergent_step is None)

    @property
    def verdict(self) -> str:
        if self.changed_inputs:
            return "inputs changed"
        return "bitwise" if self.outputs_equal else "diverged"


def compare_hashes(original_tags: dict, original_epochs: list[str], replayed_hashes: dict,
                   replayed_epochs: list[str], seeds_changed: bool) -> Comparison:
    original = {h: original_tags.get(f"reprogrid.hash.{h}") for h in (*INPUTS, *OUTPUTS)}
    comparison = Comparison(original, {h: replayed_hashes.get(h) for h in original})
    comparison.changed_inputs = [h for h in INPUTS if original[h] != comparison.replayed[h]]
    if seeds_changed:
        comparison.changed_inputs.append("seed derivation")
    comparison.first_divergent_epoch = first_divergent_epoch(original["init_weights"], original_epochs,
                                                             comparison.replayed["init_weights"], replayed_epochs)
    comparison.epochs_compared = min(len(original_epochs), len(replayed_epochs))
    return comparison


def capability_notes(original: dict, replayed: dict) -> list[str]:
    """A sentence when torch's CPU kernels took another SIMD path in the replay than in the
    run (a CPU without AVX-512 replaying a run recorded on one, say): then bits may differ."""
    def capability(record: dict) -> str | None:  # older records have only the process's, in env
        found = record["library_effective"].get("cpu_capability") or record["env"].get("cpu_capability")
        return found.lower() if found else None

    was, now = capability(original), capability(replayed)
    if was is None or was == now:
        return []
    return [f"torch's CPU kernels ran the {now} path here and the {was} path in the run: their results may "
            f"differ in the last bits (a run needs a CPU with {was} to be replayed on the same path; set "
            f"cpu_capability in its library configuration to record runs on a path other CPUs have)"]


def step_fingerprints(train_record: dict) -> list[list]:
    """A training.command run's [step, fingerprint] of its first optimizer."""
    return [[step, digest] for optimizer, step, digest in train_record["fingerprints"] if optimizer == 0]


def recorded_seeds(run: dict, train_record: dict) -> dict[str, int]:
    """The integer seed of every source, as both the params and train.json recorded it."""
    seeds = train_record["seeds"]
    for source in train_record["seed_modes"]:  # a built-in run's SOURCES, or a training.command run's
        param = run["params"].get(f"seed.{source}")
        if param is None or int(param) != seeds[source]:
            raise ReplayError(f"run {run['run_id']}: param seed.{source}={param} disagrees with its "
                              f"train.json ({seeds[source]}); the record is inconsistent")
    return seeds


def seed_derivation_changed(run_config: dict, seeds: dict[str, int]) -> bool:
    """Do today's seed derivation and the recorded seeds disagree (unseeded sources aside)?"""
    derived = derive_seeds(run_config["root_seed"], run_config["seed_modes"], run_config["replicate"])
    return any(entry["seed"] is not None and entry["seed"] != seeds[source]
               for source, entry in derived.items())


def recorded_numerics_env(client, run_id: str) -> dict[str, str]:
    """The numerics environment variables the run trained under: its library record's
    (env.json's, for runs recorded before the library record existed)."""
    try:
        return mlflow_runs.load_json_artifact(client, run_id, "library.json")["env_vars"]
    except tracking.StoreError:
        return mlflow_runs.load_json_artifact(client, run_id, "env.json")["env_vars"]


def replay(run_id: str, tracking_uri: str, scratch: str | Path | None = None,
           workdir: str | Path | None = None) -> tuple[Comparison, str, str]:
    """Re-execute run `run_id` and compare; return the comparison, the replay's MLflow
    run id and the run key. The user's own factories and data files are found in
    `workdir`, else in the working directory the run recorded (if it exists here), else
    in the current one."""
    client = tracking.existing_store_client(tracking_uri)
    run = mlflow_runs.run_summary(client, run_id)
    if run["tags"].get("reprogrid.kind") != "run":
        raise ReplayError(f"run {run_id} is not a reprogrid grid run (reprogrid.kind="
                          f"{run['tags'].get('reprogrid.kind')!r})")
    run_config = mlflow_runs.load_json_artifact(client, run_id, "run_config.json")
    train_record = mlflow_runs.load_json_artifact(client, run_id, "train.json")
    seeds = recorded_seeds(run, train_record)
    env_vars = recorded_numerics_env(client, run_id)
    if "torch" in sys.modules:
        log.warning("torch was imported before the replay set the recorded environment variables")
    try:
        restore_recorded_env_vars(env_vars)
    except ValueError as error:  # a CPU capability this CPU cannot run
        raise ReplayError(f"run {run_id} cannot be replayed here: {error}") from None
    size_thread_pools()  # NumPy's BLAS may have loaded before the variables were restored

    scratch = Path(scratch).resolve() if scratch else None  # before moving to the workdir
    recorded = run["tags"].get("reprogrid.workdir")
    workdir = Path(workdir or (recorded if recorded and Path(recorded).is_dir() else Path.cwd())).resolve()
    with tempfile.TemporaryDirectory(prefix="reprogrid-replay-") as default_scratch, contextlib.chdir(workdir):
        work = scratch or Path(default_scratch)
        work.mkdir(parents=True, exist_ok=True)
        modes = run_config["seed_modes"]
        write_json(work / "seeds.json", {"run_key": run_config["run_key"], "root_seed": run_config["root_seed"],
                                         "seeds": {s: {"mode": modes[s], "seed": seeds[s]} for s in modes}})
        write_json(work / "tracking.json", {"tracking_uri": tracking_uri, "experiment": run["experiment"],
                                            "experiment_id": run["experiment_id"]})
        from reprogrid.command.dispatch import run_evaluate, run_train

        replayed = run_train(run_config, work / "seeds.json", work / "model.pt", work / "train.json", kind="replay")
        evaluation = run_evaluate(work / "train.json", work / "model.pt", work / "tracking.json",
                                  work / "eval.json", work / "predictions.npz",
                                  extra_tags={"reprogrid.replay_of": run_id})
    comparison = compare_hashes(
        run["tags"], [e["weights"] for e in train_record["epochs"]],
        replayed["hashes"] | evaluation["hashes"], [e["weights"] for e in replayed["epochs"]],
        seed_derivation_changed(run_config, seeds),
    )
    if "command" in train_record:  # fingerprinted by optimizer step, not by epoch
        comparison.first_divergent_step = first_divergent_step(step_fingerprints(train_record),
                                                               step_fingerprints(replayed))
        comparison.steps_compared = len(step_fingerprints(train_record))
    comparison.notes += capability_notes(train_record, replayed)
    mlflow_runs.set_tags(client, evaluation["mlflow_run_id"], {
        "reprogrid.replay.verdict": comparison.verdict,
        "reprogrid.replay.first_divergent_epoch": "" if comparison.first_divergent_epoch is None
        else comparison.first_divergent_epoch,
        "reprogrid.replay.changed_inputs": ",".join(comparison.changed_inputs),
    } | ({} if comparison.steps_compared is None else {  # a training.command run's
        "reprogrid.replay.first_divergent_step": "" if comparison.first_divergent_step is None
        else comparison.first_divergent_step}))
    return comparison, evaluation["mlflow_run_id"], run_config["run_key"]


def render(comparison: Comparison, run_id: str, key: str, replay_run_id: str) -> str:
    lines = [f"replay of MLflow run {run_id} ({key})", f"{'hash':<14} {'original':<14} {'replay':<14}"]
    for name in (*INPUTS, *OUTPUTS):
        a, b = comparison.original[name] or "-", comparison.replayed[name] or "-"
        lines.append(f"{name:<14} {a[:12]:<14} {b[:12]:<14} {'same' if a == b else 'DIFFERENT'}")
    if comparison.steps_compared is not None:  # a training.command run: by recorded optimizer step
        step = comparison.first_divergent_step
        lines.append(f"{'steps':<14} {comparison.steps_compared} recorded steps compared: "
                     + ("identical" if step is None else f"first divergent step {step}"))
    else:
        epoch = comparison.first_divergent_epoch
        lines.append(f"{'epochs':<14} {comparison.epochs_compared} compared: "
                     + ("identical" if epoch is None else f"first divergent epoch {epoch}"))
    verdict = comparison.verdict
    if comparison.changed_inputs:
        verdict += f" ({', '.join(comparison.changed_inputs)})"
    lines += [f"note: {note}" for note in comparison.notes]
    lines += [f"verdict: {verdict}", f"replay logged as MLflow run {replay_run_id}"]
    return "\n".join(lines)
