"""One training.command run to its sealed files: the command run with the watch on,
then model.pt (the final weights) and train.json (seeds, the watch's record, hashes)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from reprogrid.config.seeds import draw_unseeded
from reprogrid.record.git_head import head_commit
from reprogrid.record.hashing import code_digest, config_digest, file_digest, text_digest, weights_digest
from reprogrid.record.sealed import read_json, write_atomically, write_json, write_sealed
from reprogrid.training.command_prediction import drawn_generators, expect_command_bitwise
from reprogrid.watch import journal, launch
from reprogrid.watch.hook import FINAL_WEIGHTS, WATCH_JSON
from reprogrid.watch.launch import CommandFailed

log = logging.getLogger("reprogrid")
WATCH_DIR = "watch"
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
        return {name: torch.from_numpy(arrays[name]) for name in arrays.files}


def code_labels(files: dict[str, str], script: str) -> dict[str, str]:
    """The code's digests labelled by path relative to the script's folder."""
    root = Path(script).parent
    return {str(Path(path).relative_to(root)): digest for path, digest in files.items()}


def run_command_train(run_config: dict, seeds_path, model_path, train_json_path, log_path=None,
                      kind: str = "run") -> dict:
    import torch

    from reprogrid.record.environment import environment_record, record_digest

    run_key, training = run_config["run_key"], run_config["training"]
    outdir = Path(train_json_path).resolve().parent
    record_dir = outdir / WATCH_DIR
    shutil.rmtree(record_dir, ignore_errors=True)  # an earlier attempt's journal must not mix in
    record_dir.mkdir(parents=True)
    seeds = draw_unseeded(read_json(seeds_path)["seeds"])
    spec = record_dir / "spec.json"
    write_json(spec, {"record_dir": str(record_dir), "library": run_config["library"],
                      "seeds": {g: seeds[g] for g in ("torch", "numpy", "python")}})
    command = launch.filled(training["command"], seeds["script"], outdir, run_config["replicate"])
    log_file = Path(log_path) if log_path else outdir / "command.log"
    started = time.monotonic()
    launch.run(run_key, command, launch.environment(spec, seeds["hash"] % HASH_SEED_MAX), log_file, Path.cwd(),
               training.get("timeout_s"))
    seconds = time.monotonic() - started
    if not (record_dir / WATCH_JSON).is_file():
        raise CommandFailed(f"run {run_key}: the command ended without reprogrid's watch record ({record_dir / WATCH_JSON}):"
                            f" is it a Python script run with `python`? log {log_file}: {launch.last_lines(log_file)}")
    watch = read_json(record_dir / WATCH_JSON)
    events = journal.read(record_dir)
    outputs = training.get("outputs") or {}
    metrics = launch.read_metrics(run_key, outdir / outputs["metrics"]) if "metrics" in outputs else {}
    state = final_state(run_key, outdir, record_dir, outputs)
    write_atomically(model_path, lambda partial: torch.save(state, partial))
    env = environment_record()
    hashes = {
        "code": code_digest(code_labels(watch["code"], watch["script"])) if watch["script"] else text_digest(command),
        "config": config_digest(run_config),
        "env": record_digest(env),
        "library": record_digest(watch["library_effective"]),
        "weights": weights_digest(state),
    }
    record = {
        "run_key": run_key, "kind": kind, "run_config": run_config, "seeds": seeds,
        "seed_modes": run_config["seed_modes"], "command": command,
        "expect_bitwise": expect_command_bitwise(run_config["seed_modes"], seeds, watch, events),
        "drawn": drawn_generators(watch, events),
        "seeding": [e for e in events if e["event"] == "seed"],
        "first_draws": [e for e in events if e["event"] == "first_draw"],
        "steps": watch["steps"], "fingerprints": watch["fingerprints"], "rng_intervals": watch["rng_intervals"],
        "metrics": metrics, "hashes": hashes,
        "files": {"model.pt": file_digest(model_path)},
        "train_seconds": seconds, "library_effective": watch["library_effective"], "env": env,
        "workdir": os.getcwd(), "git_commit": head_commit(os.getcwd()), "log": str(log_file),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    record = write_sealed(train_json_path, record)
    log.info("ran %s's command in %.2f s: weights %s", run_key, seconds, hashes["weights"][:12])
    return record
