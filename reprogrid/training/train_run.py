"""Training one run (the workflow's step `train`) and sealing what happened: model.pt and train.json.

No MLflow here: the run is recorded once its files are sealed (step `evaluate` hands
them to `reprogrid.evaluation.record_run`), so no MLflow run is open while a model trains and a
killed training leaves nothing behind in the store. train.json holds everything the
record needs, read back inside this process: the effective library state (threads,
native thread pools, flags, numerics variables), the machine and software, the seeds
actually used, hashes and per-epoch fingerprints.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from reprogrid.config.seeds import draw_unseeded
from reprogrid.record.git_head import head_commit
from reprogrid.record.hashing import code_digest, config_digest, data_digest, file_digest
from reprogrid.record.sealed import read_json, write_atomically, write_sealed
from reprogrid.training.prediction import expect_bitwise, expect_rerun_bitwise

log = logging.getLogger("reprogrid")
EXECUTOR_ENV = "REPROGRID_EXECUTOR"  # set by whatever started this process differently from a fresh one
MUST_RESUME_ENV = "REPROGRID_MUST_RESUME"  # an interrupted run's second process: resume, or fail
PARENT_ENV = "REPROGRID_PARENT_PID"  # ... and die with the process that holds the run's lock


def executor() -> str:
    """How this process was started: `warm` (forked by a warm server), `slurm` (a cluster
    job), or `fresh` (its own Python process)."""
    if os.environ.get(EXECUTOR_ENV):
        return os.environ[EXECUTOR_ENV]
    return "slurm" if os.environ.get("SLURM_JOB_ID") else "fresh"


def logged_warnings(caught) -> list[str]:
    """Warnings raised while training, each logged once; those about determinism
    (PyTorch's warn_only mode names the operation) are returned for the record."""
    seen = []
    for warning in caught:
        message = str(warning.message)
        if message not in seen:
            seen.append(message)
            log.warning("%s: %s", warning.category.__name__, message)
    return [m for m in seen if "determinist" in m.lower()]


def train_with_warnings(run_config: dict, seeds: dict, split, checkpoints=None, resume=None):
    """train_model, with the warnings it raised logged and those about determinism
    returned: (TrainResult, determinism warnings)."""
    from reprogrid.training.trainer import train_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_model(run_config, seeds, split, checkpoints, resume)
    return result, logged_warnings(caught)


def run_code_digest(run_config: dict) -> str:
    """The code hash of a run: the code it ran (reprogrid.record.provenance), the user's
    factories included (imported first, so that their files count)."""
    from reprogrid.inputs import usercode as user
    from reprogrid.inputs.usercode import factory_source_files, factory_specs
    from reprogrid.record import provenance

    specs = factory_specs(run_config)
    for spec in specs:
        user.import_factory(spec, "factory")
    return code_digest(provenance.checked_digests(provenance.run_code_files(factory_source_files(specs))))


def run_identity(run_config: dict, recorded_seeds: dict, env_hash: str, code_hash: str) -> dict:
    """What a checkpoint must match to be resumed from: the run, its config, the seeds
    its seeds.json fixed, the machine and software, and the code. The data are checked
    once loaded."""
    return {"run_key": run_config["run_key"], "config": config_digest(run_config), "seeds": recorded_seeds,
            "env": env_hash, "code": code_hash}


def release_memory() -> None:
    """Give back what an interrupted training held before its successor starts."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def resume_in_fresh_process(arguments: dict) -> dict:
    """Train the rest of an interrupted run in a new Python process (which must resume
    from its checkpoint, and dies with this one: the run's lock is this process's),
    relaying its log; the record it sealed."""
    environment = {k: v for k, v in os.environ.items() if k != EXECUTOR_ENV} | {
        "REPROGRID_WARM_WORKERS": "0", MUST_RESUME_ENV: "1", PARENT_ENV: str(os.getpid())}
    done = subprocess.run([sys.executable, "-m", "reprogrid.training.train_run", json.dumps(arguments)],
                          env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    for line in done.stderr.splitlines():
        log.info("[resumed process] %s", line)
    if done.returncode != 0:
        raise RuntimeError(f"the process resuming {arguments['run_config']['run_key']} failed: "
                           f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return read_json(arguments["train_json_path"])


def run_train(run_config: dict, seeds_path, model_path, train_json_path, kind: str = "run") -> dict:
    """Train one run (`kind`: "run" for the grid, "replay" for a replay); write model.pt
    and the sealed train.json; return the record."""
    import torch

    from reprogrid.inputs.data import digits_path, load_split
    from reprogrid.inputs.library import apply_library, mismatches
    from reprogrid.record import mlflow_store as tracking
    from reprogrid.record.environment import environment_record, record_digest
    from reprogrid.record.hashing import weights_digest
    from reprogrid.training.checkpoint import CheckpointFiles
    from reprogrid.training.contract import Interrupted

    start_ms = tracking.now_ms()
    code_hash = functools.cache(lambda: run_code_digest(run_config))  # once: identity and record
    library = apply_library(run_config["library"])  # read back here, where the model trains; first
    env = environment_record()
    recorded_seeds = read_json(seeds_path)["seeds"]
    checkpoints = CheckpointFiles(Path(model_path).parent,
                                  lambda: run_identity(run_config, recorded_seeds, record_digest(env), code_hash()))
    resume, why = checkpoints.latest()
    # a resumed run goes on with the seeds its first process drew for unseeded sources
    seeds = dict(resume["seeds"]) if resume else draw_unseeded(recorded_seeds)
    split = load_split(run_config["dataset"], seeds["split"])
    data_hash = data_digest(split.x_train, split.y_train, split.x_test, split.y_test)
    if resume is not None and resume.get("data") != data_hash:  # a data file edited since
        resume, why = None, f"checkpoint of epoch {resume['epoch']} ignored: another data"
    log.info("%s: %s", run_config["run_key"], why)
    if resume is None:
        if os.environ.get(MUST_RESUME_ENV):
            raise RuntimeError(f"the process resuming {run_config['run_key']} found nothing to resume from: {why}")
        checkpoints.forget_resume_point()
    executors = [*(resume or {}).get("executors", []), executor()]
    checkpoints.extra = {"data": data_hash, "executors": executors}
    interrupted = None
    try:
        result, determinism_warnings = train_with_warnings(run_config, seeds, split, checkpoints, resume)
    except Interrupted as stop:
        interrupted = stop.epoch
    if interrupted is not None:  # out of the except block: the fit's frames, its model included, are freed
        resume = split = None
        release_memory()
        log.info("%s stopped itself after epoch %d (interrupt_after_epoch): a fresh process resumes it",
                 run_config["run_key"], interrupted)
        return resume_in_fresh_process({"run_config": run_config, "seeds_path": str(seeds_path),
                                        "model_path": str(model_path), "train_json_path": str(train_json_path),
                                        "kind": kind})
    state = result.model.state_dict()
    write_atomically(model_path, lambda partial: torch.save(state, partial))
    # read back from the training: run.loader starts every worker it is configured with, or none
    library["num_workers"] = run_config["library"]["num_workers"] if result.loader_workers_started else 0
    unreached = ["num_workers"] if run_config["library"]["num_workers"] and not result.loader_workers_started else []
    hashes = {
        "data": data_hash,
        "code": code_hash(),
        "config": config_digest(run_config),
        "env": record_digest(env),
        "library": record_digest(library),
        "init_weights": result.init_weights,
        "weights": weights_digest(state),
    }
    dataset = run_config["dataset"]
    record = {
        "run_key": run_config["run_key"],
        "kind": kind,
        "run_config": run_config,
        "seeds": seeds,
        "seed_modes": run_config["seed_modes"],
        # predicted from what the run drew (its RNG trace and the streams it used), not only from its config
        "expect_bitwise": expect_bitwise(run_config, result.rng, result.sources_used, library["device"]),
        "expect_rerun_bitwise": expect_rerun_bitwise(run_config, result.rng, result.sources_used, library["device"]),
        "rng": result.rng,  # phase -> global generators drawn from (per epoch: in "epochs")
        "sources_used": result.sources_used,
        "training_started_by": result.training_started_by,
        "loader_workers_started": result.loader_workers_started,
        "worker_duplicates": result.worker_duplicates,
        "resumed_from_epoch": result.resumed_from_epoch,
        # written, seconds, bytes (the last one), unrestored and unregistered pieces
        "checkpoints": result.checkpointing,
        "ulp_nudge": result.ulp_nudge,
        "determinism_warnings": determinism_warnings,
        "task": split.task,
        "data_file": split.file,
        "dataset_record": {
            "name": dataset.get("name") or dataset.get("factory") or Path(dataset["path"]).name,
            "source_path": str(digits_path()) if dataset.get("name") == "digits" else dataset.get("path"),
        },
        "hashes": hashes,
        "files": {"model.pt": file_digest(model_path)},
        "epochs": result.epochs,
        "train_seconds": result.train_seconds,
        "started_ms": start_ms,
        "library_effective": library,
        "library_mismatch": mismatches(run_config["library"], library),
        "library_unreached": unreached,  # knobs that never reached the training (no loader worker started)
        "env": env,
        "executor": "+".join(executors),  # e.g. warm+fresh: a run interrupted and resumed
        "workdir": os.getcwd(),  # where relative data paths and own factories resolve
        "git_commit": head_commit(os.getcwd()),  # of the repository holding it, if any
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    record = write_sealed(train_json_path, record)
    checkpoints.retire()
    log.info("trained %s in %.2f s (%s process): weights %s", run_config["run_key"], result.train_seconds,
             record["executor"], hashes["weights"][:12])
    return record


def die_with_parent() -> None:
    """Linux: be killed when the parent (which holds the run's lock) dies, however it dies;
    so no second training of the run can outlive its lock."""
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(os.environ[PARENT_ENV]):  # it died before the line above
        os._exit(1)


if __name__ == "__main__":  # an interrupted run's second process (resume_in_fresh_process)
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    run_train(**json.loads(sys.argv[1]))
