"""Step `evaluate` of a training.command run: the script evaluated itself, so its
`outputs.predictions` (if any) become predictions.npz, its metrics the run's metrics,
and the run is recorded in MLflow from the sealed files, as a built-in run is."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from reprogrid.record.hashing import file_digest
from reprogrid.record.sealed import IntegrityError, read_sealed, write_atomically, write_sealed

log = logging.getLogger("reprogrid")


def command_predictions(run_dir: Path, train_record: dict, train_json_path) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, labels) from `outputs.predictions`: an .npz with `logits` and `labels`, or an
    .npy of outputs alone (no labels); empty arrays when the command writes none."""
    from reprogrid.command.run import OUTPUT_DIR

    name = (train_record["run_config"]["training"].get("outputs") or {}).get("predictions")
    if name is None:
        return np.zeros((0,), np.float32), np.zeros((0,), np.int64)
    path = run_dir / OUTPUT_DIR / name
    if not path.is_file() or file_digest(path) != train_record["outputs"]["predictions"]:
        raise IntegrityError(f"{path}: not the predictions file {train_json_path} recorded (changed or removed "
                             f"since training); rerun train for {train_record['run_key']}")
    try:
        stored = np.load(path, allow_pickle=False)
    except ValueError as error:  # not NumPy's format, or object arrays
        raise IntegrityError(f"{path}: not a NumPy .npy/.npz of numbers (training.outputs.predictions): "
                             f"{error}") from None
    if isinstance(stored, np.ndarray):
        return stored.astype(np.float32), np.zeros((0,), np.int64)
    with stored:
        missing = [key for key in ("logits", "labels") if key not in stored.files]
        if missing:
            raise IntegrityError(f"{path}: an .npz of predictions holds `logits` and `labels`; it lacks "
                                 f"{', '.join(missing)} (training.outputs.predictions)")
        return stored["logits"].astype(np.float32), np.asarray(stored["labels"])


def run_command_evaluate(train_json_path, model_path, tracking_path, eval_json_path, predictions_path,
                         weights_path=None, extra_tags: dict | None = None) -> dict:
    from reprogrid.evaluation.evaluate_run import load_checked_state
    from reprogrid.evaluation.record_run import record_run
    from reprogrid.record.hashing import predictions_digest, tensor_to_numpy

    train_record = read_sealed(train_json_path)
    state = load_checked_state(model_path, train_record, train_json_path)
    outputs, labels = command_predictions(Path(train_json_path).parent, train_record, train_json_path)
    write_atomically(predictions_path, lambda partial: np.savez(partial, logits=outputs, labels=labels))
    files = {"predictions.npz": file_digest(predictions_path)}
    if weights_path is not None:
        floats = [tensor_to_numpy(t).ravel() for t in state.values() if t.is_floating_point()]
        flat = np.concatenate(floats) if floats else np.zeros((0,), np.float32)
        write_atomically(weights_path, lambda partial: np.save(partial, flat))
        files["weights.npy"] = file_digest(weights_path)
    evaluation = {
        "run_key": train_record["run_key"],
        "metrics": dict(train_record["metrics"]),  # the script's own, from outputs.metrics
        "hashes": {"predictions": predictions_digest(outputs, labels), "weights": train_record["hashes"]["weights"]},
        "files": files,
        "rng": [],
    }
    evaluation["mlflow_run_id"] = record_run(train_record, evaluation, tracking_path, [predictions_path], None,
                                             extra_tags)
    record = write_sealed(eval_json_path, evaluation)
    log.info("recorded %s's command run: %s", train_record["run_key"], evaluation["metrics"])
    return record
