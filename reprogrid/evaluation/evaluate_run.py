"""Step `evaluate`: evaluate one trained run, seal its outputs, then record the run in
MLflow (`reprogrid.evaluation.record_run`) and write eval.json, in that order: eval.json, the
job's last output, names the MLflow run that records it."""

from __future__ import annotations

import logging
from pathlib import Path

from reprogrid.record.hashing import data_digest, file_digest
from reprogrid.record.sealed import IntegrityError, read_sealed, write_atomically, write_sealed

log = logging.getLogger("reprogrid")


def load_checked_state(model_path, train_record: dict, train_json_path) -> dict:
    """Load model.pt with weights_only=True, refusing any file that train did not write."""
    import torch

    from reprogrid.record.hashing import weights_digest

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
                 weights_path=None, extra_tags: dict | None = None) -> dict:
    """Evaluate one trained run: write predictions.npz and (for analyses that need no
    torch) the flattened final weights, weights.npy; record the run in MLflow; write
    eval.json. Returns eval.json's record."""
    import numpy as np

    from reprogrid.evaluation.evaluator import evaluate_run
    from reprogrid.evaluation.record_run import record_run
    from reprogrid.inputs.data import load_split
    from reprogrid.inputs.library import apply_library, torch_device, torch_dtype
    from reprogrid.inputs.models import build_model
    from reprogrid.record.hashing import predictions_digest, tensor_to_numpy

    train_record = read_sealed(train_json_path)
    run_config, key = train_record["run_config"], train_record["run_key"]
    state = load_checked_state(model_path, train_record, train_json_path)
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], train_record["seeds"]["split"])
    if data_digest(split.x_train, split.y_train, split.x_test, split.y_test) != train_record["hashes"]["data"]:
        raise IntegrityError(f"{key}: the data no longer hash as they did in training ({train_json_path})")
    library = run_config["library"]
    model = build_model(run_config["model"], split.n_classes, split.n_features)
    model = model.to(device=torch_device(library), dtype=torch_dtype(library))
    model.load_state_dict(state)
    # reprogrid's evaluation draws nothing; a user's may (from one stream, the same in every replicate)
    metrics, logits, labels, drawn = evaluate_run(model, run_config, split, train_record["seeds"])

    write_atomically(predictions_path, lambda partial: np.savez(partial, logits=logits, labels=labels))
    files = {"predictions.npz": file_digest(predictions_path)}
    if weights_path is not None:
        flat = np.concatenate([tensor_to_numpy(t).ravel() for t in state.values() if t.is_floating_point()])
        write_atomically(weights_path, lambda partial: np.save(partial, flat))
        files["weights.npy"] = file_digest(weights_path)
    evaluation = {
        "run_key": key,
        "metrics": metrics,
        "hashes": {"predictions": predictions_digest(logits, labels), "weights": train_record["hashes"]["weights"]},
        "files": files,
        "rng": drawn,
    }
    run_id = record_run(train_record, evaluation, tracking_path, [predictions_path],
                        (split.x_train, split.y_train), extra_tags)
    evaluation["mlflow_run_id"] = run_id
    record = write_sealed(eval_json_path, evaluation)
    log.info("evaluated %s: %s", key, {k: round(v, 4) for k, v in metrics.items()})
    return record
