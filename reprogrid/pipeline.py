"""One code path for a grid run: seed -> train -> evaluate, files and MLflow together.

The workflow's scripts call these functions with plain arguments; a replay calls the
same ones. Heavy imports (torch, mlflow) happen inside the steps that need them, so the
seed step never pays for torch.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import reprogrid
from reprogrid import config as cfg
from reprogrid.hashing import code_digest, config_digest, data_digest, file_digest
from reprogrid.records import IntegrityError, read_json, read_sealed, write_json, write_sealed  # noqa: F401
from reprogrid.seeds import derive_seeds, draw_unseeded

log = logging.getLogger("reprogrid")


def package_dir() -> Path:
    return Path(reprogrid.__file__).resolve().parent


def default_workflow_dir() -> Path | None:
    """The checkout around the imported package, when it holds the workflow."""
    root = package_dir().parent
    return root if (root / "Snakefile").is_file() else None


def prepare_tracking(uri: str, experiment: str, out_path: str | Path, grid: dict | None = None) -> None:
    """Create the store and experiment (and record the grid it expects, for audits)."""
    from reprogrid import tracking

    experiment_id = tracking.prepare_experiment(uri, experiment)
    if grid is not None:
        tracking.set_grid(tracking.client(uri), experiment_id, grid)
    end_abandoned_runs(tracking.client(uri), experiment_id)
    write_json(out_path, {"tracking_uri": uri, "experiment": experiment, "experiment_id": experiment_id})
    log.info("MLflow experiment %r (id %s) at %s", experiment, experiment_id, uri)


def end_abandoned_runs(client, experiment_id: str, runs_dir: str | Path = "results/runs") -> None:
    """Runs an earlier invocation in this working directory started and never ended
    (its jobs were killed) become KILLED, with the reason, and stay as history. A run a
    train.json here still points at is left alone: its evaluate job will finish it."""
    from reprogrid import tracking

    for run in tracking.abandoned_runs(client, experiment_id, os.getcwd()):
        key = run.data.tags.get("reprogrid.run_key", "")
        record = Path(runs_dir) / key / "train.json"
        try:
            if read_json(record).get("mlflow_run_id") == run.info.run_id:
                continue
        except (OSError, ValueError):
            pass  # no record, or a damaged one: the run cannot be finished from it
        tracking.mark_killed(client, run.info.run_id, "its job died before finishing; found RUNNING by the "
                                                      "next invocation in the same working directory")
        log.warning("%s: MLflow run %s was left RUNNING by a job that died; marked KILLED", key, run.info.run_id)


def run_seed(setting: str, libconf: str, replicate: int | str, root_seed: int, modes: dict,
             out_path: str | Path) -> None:
    replicate = int(replicate)
    run_key = cfg.run_key(setting, libconf, replicate)
    seeds = derive_seeds(root_seed, modes, replicate)
    write_json(out_path, {"run_key": run_key, "root_seed": root_seed, "seeds": seeds})
    log.info("seeds of %s: %s", run_key, {s: e["seed"] if e["seed"] is not None else e["mode"] for s, e in seeds.items()})


def run_preflight(config: dict) -> None:
    """The user's own code and data, tried once before any run exists: the dataset is
    loaded (factory called or file read), the model built, two training examples passed
    through it and the loss taken. Any problem is a ConfigError naming the key."""
    import torch

    from reprogrid import randomness
    from reprogrid.data import load_split
    from reprogrid.models import build_model
    from reprogrid.train import loss_function

    setting, libconf = cfg.grid_cells(config)[0]
    run_config = cfg.resolve_run_config(config, setting, libconf, 1)
    seeds = draw_unseeded(derive_seeds(config["root_seed"], run_config["seed_modes"], 1))
    split = load_split(run_config["dataset"], seeds["split"])
    randomness.seed_init(seeds)
    model_key = "model.factory" if "factory" in run_config["model"] else "model.name"
    model = build_model(run_config["model"], split.n_classes)
    inputs = torch.as_tensor(split.x_train[:2])
    targets = torch.as_tensor(split.y_train[:2], dtype=torch.float32 if split.task == "regression" else None)
    try:
        outputs = model(inputs)
    except Exception as error:  # noqa: BLE001 - the user's model meets the user's data
        raise cfg.ConfigError(model_key, f"the model cannot take the data: two training examples of shape "
                                         f"{tuple(inputs.shape[1:])} raised {type(error).__name__}: {error}") from None
    if not isinstance(outputs, torch.Tensor):
        if run_config["model"].get("name") == "vae":
            return  # reconstruction, mean, log-variance: trained by its ELBO
        raise cfg.ConfigError(model_key, f"the model returned {type(outputs).__name__}; it must return a tensor")
    if split.task == "classification" and (outputs.ndim != 2 or outputs.shape[1] < split.n_classes):
        raise cfg.ConfigError(model_key, f"the model outputs shape {tuple(outputs.shape)} for 2 examples; to "
                                         f"classify {split.n_classes} classes it must output (2, {split.n_classes})")
    if split.task == "regression" and outputs.numel() != targets.numel():
        raise cfg.ConfigError(model_key, f"the model outputs shape {tuple(outputs.shape)} for targets of shape "
                                         f"{tuple(targets.shape)}; a regression needs one output per target")
    loss_key = "training.loss"
    loss_of = loss_function(run_config["training"], split.task)
    try:
        loss = loss_of(outputs, targets)
    except Exception as error:  # noqa: BLE001
        raise cfg.ConfigError(loss_key, f"the loss raised {type(error).__name__}: {error}") from None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise cfg.ConfigError(loss_key, "the loss must return a single-number tensor (the batch's mean)")
    log.info("preflight: %s data (%d train, %d test, %s), model and loss work together", split.task,
             len(split.y_train), len(split.y_test), "x".join(map(str, split.x_train.shape[1:])))


def run_params(run_config: dict, seeds: dict[str, int]) -> dict:
    """The MLflow params of a grid run (design.md, "MLflow contract")."""
    params = {"root_seed": run_config["root_seed"]}
    params |= {f"seed.{s}": seeds[s] for s in cfg.SOURCES}
    params |= {f"seed_mode.{s}": run_config["seed_modes"][s] for s in cfg.SOURCES}
    params |= {f"lib.{k}": v for k, v in run_config["library"].items()}
    for section in ("dataset", "model", "training", "augment"):
        for key, value in run_config[section].items():
            if isinstance(value, dict):  # a factory's kwargs: one param each
                params |= {f"{section}.{key}.{k}": v for k, v in value.items()}
            else:
                params[f"{section}.{key}"] = value
    return params


def run_tags(run_config: dict, kind: str = "run") -> dict:
    return {
        "reprogrid.kind": kind,
        "reprogrid.run_key": run_config["run_key"],
        "reprogrid.setting": run_config["setting"],
        "reprogrid.libconf": run_config["libconf"],
        "reprogrid.replicate": run_config["replicate"],
        "reprogrid.expect_bitwise": str(cfg.expect_bitwise(run_config)).lower(),
        "reprogrid.expect_rerun_bitwise": str(cfg.expect_rerun_bitwise(run_config)).lower(),
        "reprogrid.varied_sources": ",".join(cfg.varied_sources(run_config)),
        "reprogrid.version": reprogrid.__version__,
    }


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


def train_with_warnings(run_config: dict, seeds: dict, split):
    """train_model, with the warnings it raised logged and those about determinism
    returned: (TrainResult, determinism warnings)."""
    from reprogrid.train import train_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_model(run_config, seeds, split)
    return result, logged_warnings(caught)


def run_train(run_config: dict, seeds_path, tracking_path, model_path, train_json_path,
              workflow_dir: str | Path | None = None, kind: str = "run", extra_tags: dict | None = None) -> dict:
    """Train one grid run, save model.pt and train.json, open its MLflow run (tagged
    `reprogrid.kind=kind`: "run" for the grid, "replay" for a replay)."""
    import torch

    from reprogrid import tracking
    from reprogrid.data import digits_path, load_split
    from reprogrid.env import environment_record
    from reprogrid.hashing import canonical_json, text_digest, weights_digest
    from reprogrid.library import apply_library, mismatches
    from reprogrid.user import factory_source_files, factory_specs

    start_ms = tracking.now_ms()
    key = run_config["run_key"]
    seed_record = read_json(seeds_path)
    seeds = draw_unseeded(seed_record["seeds"])
    effective = apply_library(run_config["library"])
    env = environment_record(effective)
    split = load_split(run_config["dataset"], seeds["split"])
    result, determinism_warnings = train_with_warnings(run_config, seeds, split)
    hashes = {
        "data": data_digest(split.x_train, split.y_train, split.x_test, split.y_test),
        # after training: every factory the run uses has been imported by now
        "code": code_digest(package_dir(), workflow_dir or default_workflow_dir(),
                            factory_source_files(factory_specs(run_config))),
        "config": config_digest(run_config),
        "env": text_digest(canonical_json(env)),
    }
    state = result.model.state_dict()
    hashes["init_weights"] = result.init_weights
    hashes["weights"] = weights_digest(state)
    model_path = Path(model_path)
    partial = model_path.with_name(model_path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, model_path)

    tracked = read_json(tracking_path)
    client = tracking.client(tracked["tracking_uri"])
    tags = run_tags(run_config, kind) | (extra_tags or {}) | {f"reprogrid.hash.{k}": v for k, v in hashes.items()}
    lib_mismatch = mismatches(run_config["library"], effective)
    if lib_mismatch:
        tags["reprogrid.lib_mismatch"] = json.dumps(lib_mismatch)
    tags["reprogrid.task"] = split.task
    tags["reprogrid.workdir"] = os.getcwd()  # where relative data paths and own factories resolve
    if determinism_warnings:  # warn_only: operations that ran without a deterministic kernel
        tags["reprogrid.determinism_warnings"] = len(determinism_warnings)
    if os.environ.get("SLURM_JOB_ID"):  # which cluster job trained it
        tags["reprogrid.slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    if split.file:  # the file as read, beside the hash of what it yielded
        tags |= {"reprogrid.data.file_sha256": split.file["sha256"], "reprogrid.data.file_size": split.file["size"]}
    for earlier in tracking.abandoned_runs(client, tracked["experiment_id"], os.getcwd(), key):
        if kind == "run":  # this attempt supersedes one whose job died (Snakemake reruns it)
            tracking.mark_killed(client, earlier.info.run_id, "its job died before finishing; superseded by "
                                                              "a new attempt at the same run key")
    run_id = tracking.create_run(client, tracked["experiment_id"], key, tags, start_ms)
    tracking.log_batch(
        client, run_id,
        params=run_params(run_config, seeds),
        metrics={"train_seconds": result.train_seconds},
        series={"train_loss": [e["train_loss"] for e in result.epochs]},
    )
    dataset = run_config["dataset"]
    source_path = str(digits_path()) if dataset.get("name") == "digits" else dataset.get("path")
    tracking.log_dataset(
        client, run_id, name=dataset.get("name") or dataset.get("factory") or Path(dataset["path"]).name,
        features=split.x_train, targets=split.y_train, sha256=hashes["data"], source_path=source_path,
    )
    record = {
        "run_key": key,
        "mlflow_run_id": run_id,
        "experiment_id": tracked["experiment_id"],
        "run_config": run_config,
        "seeds": seeds,
        "seed_modes": run_config["seed_modes"],
        "expect_bitwise": cfg.expect_bitwise(run_config),
        "ulp_nudge": result.ulp_nudge,
        "determinism_warnings": determinism_warnings,
        "task": split.task,
        "data_file": split.file,
        "hashes": hashes,
        "files": {"model.pt": file_digest(model_path)},
        "kind": kind,
        "epochs": result.epochs,
        "train_seconds": result.train_seconds,
        "library_effective": effective,
        "library_mismatch": lib_mismatch,
        "env": env,
    }
    record = write_sealed(train_json_path, record)
    tracking.log_artifacts(client, run_id, {
        "run_config.json": run_config, "env.json": env, "train.json": record,
        "seeds.json": {"modes": run_config["seed_modes"], "seeds": seeds},
    })
    log.info("trained %s in %.2f s: weights %s, MLflow run %s",
             key, result.train_seconds, hashes["weights"][:12], run_id)
    return record


def load_checked_state(model_path, train_record: dict, train_json_path) -> dict:
    """Load model.pt with weights_only=True, refusing any file that train did not write."""
    import torch

    from reprogrid.hashing import weights_digest

    key = train_record["run_key"]
    recorded = train_record["files"]["model.pt"]
    if file_digest(model_path) != recorded:
        raise IntegrityError(
            f"{model_path}: its sha256 is not the {recorded[:12]}… that {train_json_path} "
            f"recorded, so it was changed after training; rerun train for {key} "
            f"(snakemake --forcerun train {Path(train_json_path).with_name('eval.json')})"
        )
    try:  # never a full unpickle: a planted pickle must not run code here
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - UnpicklingError and friends
        raise IntegrityError(
            f"{model_path}: refused to load: it is not a plain state_dict of tensors (torch.load with "
            f"weights_only=True said: {str(error).splitlines()[0]}). It was not written by train; rerun "
            f"train for {train_record['run_key']}") from None
    if weights_digest(state) != train_record["hashes"]["weights"]:
        raise IntegrityError(f"{model_path}: its weights hash differs from {train_json_path}'s")
    return state


def run_evaluate(train_json_path, model_path, tracking_path, eval_json_path, predictions_path,
                 weights_path=None) -> dict:
    """Evaluate one trained run, write eval.json, predictions.npz and (for analyses that
    need no torch) the flattened final weights, weights.npy; finish its MLflow run."""
    import numpy as np

    from reprogrid import tracking
    from reprogrid.data import load_split
    from reprogrid.evaluate import evaluate_model
    from reprogrid.hashing import predictions_digest
    from reprogrid.library import apply_library, torch_device, torch_dtype
    from reprogrid.models import build_model

    train_record = read_sealed(train_json_path)
    run_config, key = train_record["run_config"], train_record["run_key"]
    state = load_checked_state(model_path, train_record, train_json_path)
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], train_record["seeds"]["split"])
    if data_digest(split.x_train, split.y_train, split.x_test, split.y_test) != train_record["hashes"]["data"]:
        raise IntegrityError(f"{key}: the data no longer hash as they did in training ({train_json_path})")
    library = run_config["library"]
    model = build_model(run_config["model"], split.n_classes)
    model = model.to(device=torch_device(library), dtype=torch_dtype(library))
    model.load_state_dict(state)
    metrics, logits, labels = evaluate_model(model, run_config, split)

    predictions_path = Path(predictions_path)
    partial = predictions_path.with_name(predictions_path.name + ".partial.npz")
    np.savez(partial, logits=logits, labels=labels)
    os.replace(partial, predictions_path)
    files = {"predictions.npz": file_digest(predictions_path)}
    if weights_path is not None:
        from reprogrid.hashing import tensor_to_numpy

        weights_path = Path(weights_path)
        partial = weights_path.with_name(weights_path.name + ".partial.npy")
        flat = [tensor_to_numpy(t).ravel() for t in state.values() if t.is_floating_point()]
        np.save(partial, np.concatenate(flat))
        os.replace(partial, weights_path)
        files["weights.npy"] = file_digest(weights_path)
    record = {
        "run_key": key,
        "mlflow_run_id": train_record["mlflow_run_id"],
        "metrics": metrics,
        "hashes": {"predictions": predictions_digest(logits, labels), "weights": train_record["hashes"]["weights"]},
        "files": files,
    }
    record = write_sealed(eval_json_path, record)

    client = tracking.client(read_json(tracking_path)["tracking_uri"])
    run_id = train_record["mlflow_run_id"]
    tracking.log_batch(client, run_id, metrics=metrics,
                       tags={"reprogrid.hash.predictions": record["hashes"]["predictions"]})
    tracking.log_artifacts(client, run_id, {"eval.json": record}, files=[predictions_path])
    tracking.finish_run(client, run_id)
    log.info("evaluated %s: %s", key, {k: round(v, 4) for k, v in metrics.items()})
    return record


def run_compare(run_dirs: list, tracking_path, summary_path, pairs_path, report_path,
                attribution_path=None, libconfs_path=None, figures_dir=None, reference_libconf=None) -> None:
    """Compare all runs: summary.csv, pairs.csv, attribution.csv, libconfs.csv, the figures
    and report.html; log them as one MLflow run tagged reprogrid.kind=compare."""
    from reprogrid import tracking
    from reprogrid.compare import compare_runs, load_run, write_csv
    from reprogrid.report import render_report, write_figures

    out = Path(summary_path).parent
    attribution_path = attribution_path or out / "attribution.csv"
    libconfs_path = libconfs_path or out / "libconfs.csv"
    figures_dir = Path(figures_dir or out / "figures")
    runs = [load_run(d) for d in run_dirs]
    comparison = compare_runs(runs, reference_libconf)
    for frame, path in ((comparison.summary, summary_path), (comparison.pairs, pairs_path),
                        (comparison.attribution, attribution_path), (comparison.libconfs, libconfs_path)):
        write_csv(frame, path)
    figures = write_figures(comparison, figures_dir)
    tracked = read_json(tracking_path)
    Path(report_path).write_text(
        render_report(f"reprogrid: {tracked['experiment']}", comparison, figures), encoding="utf-8"
    )
    client = tracking.client(tracked["tracking_uri"])
    run_id = tracking.create_run(
        client, tracked["experiment_id"], "compare",
        {"reprogrid.kind": "compare", "reprogrid.version": reprogrid.__version__},
        tracking.now_ms(),
    )
    tracking.log_batch(client, run_id, params={"runs": len(runs), "cells": len(comparison.summary),
                                               "reference_libconf": comparison.reference_libconf})
    tracking.log_artifacts(client, run_id, files=[summary_path, pairs_path, attribution_path, libconfs_path,
                                                  report_path, *((f"figures/{p.name}", p) for p in figures.values())])
    tracking.finish_run(client, run_id)
    log.info("compared %d runs in %d cells; MLflow run %s", len(runs), len(comparison.summary), run_id)


def run_audit(tracking_uri: str, experiment: str | None = None, json_path=None):
    """Audit an experiment from its MLflow records alone; write the report as JSON."""
    from reprogrid import audit, tracking

    client = tracking.existing_store_client(tracking_uri)
    experiment_id, name, grid = tracking.find_experiment(client, experiment)
    records = [audit.RunRecord(**r) for r in tracking.run_records(client, experiment_id)]

    def fingerprints(run_id: str) -> list[str]:
        return [e["weights"] for e in tracking.load_json_artifact(client, run_id, "train.json")["epochs"]]

    report = audit.audit(name, records, grid, fingerprints)
    if json_path:
        write_json(json_path, report.as_dict() | {"tracking_uri": tracking_uri})
    log.info("audit of %r: %s", name, "OK" if report.ok else f"{len(report.violations)} violations")
    return report
