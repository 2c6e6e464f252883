"""One training.command run to its sealed files: the command run with the watch on,
then model.pt (the final weights) and train.json (seeds, the watch's record, hashes)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from reprogrid.command.governing import drawn_generators, expect_command_bitwise, varied_command_sources
from reprogrid.command.story import seeding_story
from reprogrid.config.seeds import draw_unseeded
from reprogrid.record.git_head import head_commit
from reprogrid.record.hashing import code_digest, config_digest, file_digest, text_digest, weights_digest
from reprogrid.record.sealed import read_json, write_atomically, write_json, write_sealed
from reprogrid.watch import journal, launch
from reprogrid.watch.hook import FINAL_WEIGHTS, WATCH_JSON
from reprogrid.watch.launch import CommandFailed

log = logging.getLogger("reprogrid")
WATCH_DIR = "watch"
OUTPUT_DIR = "output"  # the command's {outdir}: its own files never meet the ones reprogrid's steps write
HASH_SEED_MAX = 2**32 - 1  # PYTHONHASHSEED's range


def final_state(run_key: str, outdir: Path, record_dir: Path, outputs: dict) -> dict:
    """The final weights: the `outputs.model` state_dict, else the optimizers' parameters at exit."""
    import numpy as np
    import torch

    if "model" in outputs:
        path = outdir / outputs["model"]
        if not path.is_file():
            raise CommandFailed(f"run {run_key}: training.command wrote no model file {path} (training.outputs.model)")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 (torch raises many kinds)
            raise CommandFailed(f"run {run_key}: model file {path} is not a state_dict torch.load reads "
                                f"with weights_only=True ({type(error).__name__})") from None
    if not (record_dir / FINAL_WEIGHTS).is_file():
        raise CommandFailed(f"run {run_key}: no optimizer stepped and training.outputs.model names no file: "
                            "nothing to take as the final weights")
    with np.load(record_dir / FINAL_WEIGHTS) as arrays:
        return {name.removesuffix("_bfloat16"): torch.from_numpy(arrays[name]).view(torch.bfloat16)
                if name.endswith("_bfloat16") else torch.from_numpy(arrays[name]) for name in arrays.files}


def code_labels(files: dict[str, str], script: str) -> dict[str, str]:
    """The code's digests labelled by path relative to the script's folder."""
    root = Path(script).parent
    return {str(Path(path).relative_to(root)): digest for path, digest in files.items()}


def output_digests(run_key: str, outdir: Path, outputs: dict) -> dict[str, str]:
    """sha256 of each declared output the command wrote (evaluate refuses one changed since)."""
    digests = {}
    for kind, name in outputs.items():
        if not (outdir / name).is_file():
            raise CommandFailed(f"run {run_key}: training.command wrote no {kind} file {outdir / name} "
                                f"(training.outputs.{kind})")
        digests[kind] = file_digest(outdir / name)
    return digests


def run_command_train(run_config: dict, seeds_path, model_path, train_json_path, log_path=None,
                      kind: str = "run") -> dict:
    import torch

    from reprogrid.inputs.library import mismatches
    from reprogrid.record import mlflow_store as tracking
    from reprogrid.record.environment import environment_record, record_digest

    started_ms = tracking.now_ms()
    run_key, training = run_config["run_key"], run_config["training"]
    run_dir = Path(train_json_path).resolve().parent
    outdir, record_dir = run_dir / OUTPUT_DIR, run_dir / WATCH_DIR
    for earlier in (outdir, record_dir):  # an earlier attempt's files must not mix in
        shutil.rmtree(earlier, ignore_errors=True)
        earlier.mkdir(parents=True)
    seeds = draw_unseeded(read_json(seeds_path)["seeds"])
    spec = record_dir / "spec.json"
    write_json(spec, {"record_dir": str(record_dir), "library": run_config["library"],
                      "seeds": {g: seeds[g] for g in ("torch", "numpy", "python")}})
    command = launch.filled(training["command"], seeds["script"], outdir, run_config["replicate"],
                            training.get("args"))
    log_file = Path(log_path) if log_path else run_dir / "command.log"
    started = time.monotonic()
    launch.run(run_key, command, launch.environment(spec, seeds["hash"] % HASH_SEED_MAX), log_file, Path.cwd(),
               training.get("timeout_s"))
    seconds = time.monotonic() - started
    if not (record_dir / WATCH_JSON).is_file():
        raise CommandFailed(f"run {run_key}: the command ended without reprogrid's watch record ({record_dir / WATCH_JSON}):"
                            f" is it a Python script run with `python`? log {log_file}: {launch.last_lines(log_file)}")
    watch = read_json(record_dir / WATCH_JSON)
    # the hash source's seed, recorded as seed.hash: not part of the library state
    watch["library_effective"].get("env_vars", {}).pop("PYTHONHASHSEED", None)
    events = journal.read(record_dir)
    outputs = training.get("outputs") or {}
    metrics = launch.read_metrics(run_key, outdir / outputs["metrics"]) if "metrics" in outputs else {}
    written = output_digests(run_key, outdir, outputs)
    state = final_state(run_key, outdir, record_dir, outputs)
    write_atomically(model_path, lambda partial: torch.save(state, partial))
    env = environment_record()
    code = code_labels(watch["code"], watch["script"]) if watch["script"] else {}
    hashes = {
        "code": code_digest(code) if code else text_digest(command),
        "config": config_digest(run_config),
        "env": record_digest(env),
        "library": record_digest(watch["library_effective"]),
        # the first optimizer's parameters before its first step (a fingerprint, not a state_dict's hash)
        "init_weights": watch["initial_fingerprint"] or "",
        "weights": weights_digest(state),
    }
    expected = expect_command_bitwise(run_config["seed_modes"], seeds, watch, events)
    record = {
        "run_key": run_key, "kind": kind, "run_config": run_config, "seeds": seeds,
        "seed_modes": run_config["seed_modes"], "command": command, "script": watch["script"],
        "code_files": code,  # the script and what it imported from its folder, by path relative to it
        "expect_bitwise": expected, "expect_rerun_bitwise": expected,
        "varied_sources": varied_command_sources(run_config["seed_modes"], seeds, watch, events),
        "drawn": drawn_generators(watch, events),
        "rng": {"train": drawn_generators(watch, events)},  # as a built-in run's: its MLflow tag reprogrid.rng.train
        "seeding": [e for e in events if e["event"] == "seed"],
        "first_draws": [e for e in events if e["event"] == "first_draw"],
        "draw_sites": [e for e in events if e["event"] == "draw_site"],  # lines that drew from torch's generator
        "steps": watch["steps"], "fingerprints": watch["fingerprints"], "rng_intervals": watch["rng_intervals"],
        "metrics": metrics, "hashes": hashes, "outputs": written,
        "files": {"model.pt": file_digest(model_path)},
        "train_seconds": seconds, "started_ms": started_ms, "epochs": [],
        "library_effective": watch["library_effective"],
        "library_mismatch": mismatches(run_config["library"], watch["library_effective"]),
        "determinism_warnings": [], "task": "own", "data_file": None, "executor": "command", "env": env,
        "workdir": os.getcwd(), "git_commit": head_commit(os.getcwd()), "log": str(log_file),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    record["seeding_story"] = seeding_story(record)
    record = write_sealed(train_json_path, record)
    log.info("ran %s's command in %.2f s: weights %s", run_key, seconds, hashes["weights"][:12])
    return record
