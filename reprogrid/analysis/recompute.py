"""Metrics recomputed from the predictions a run wrote, so that nothing downstream
takes a metric on trust from eval.json: an edited (and resealed) eval.json, or
predictions that do not match it, are refused by name.

NumPy only (compare imports no torch). Accuracy and RMSE come out bit for bit as
evaluate computed them (the same operations on the same float32 outputs). The test
loss is checked where it can be: cross-entropy and mean squared error, recomputed in
float64 and compared with a relative tolerance (evaluate summed it in float32 batches);
a VAE's ELBO needs the inputs and a user's loss needs torch, so those are not.
"""

from __future__ import annotations

import numpy as np

LOSS_TOLERANCE = 1e-4  # relative: float32 batch sums against a float64 recomputation


def metrics_from(outputs: np.ndarray, targets: np.ndarray, task: str, loss: str) -> dict[str, float]:
    """The metrics evaluate reports that `outputs` (logits, or regression outputs) and
    `targets` determine."""
    metrics: dict[str, float] = {}
    if task == "classification":
        metrics["test_accuracy"] = float((outputs.argmax(axis=1) == targets).mean())
        if loss in ("auto", "cross_entropy"):
            logits = outputs.astype(np.float64)
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            metrics["test_loss"] = float(-log_probs[np.arange(len(targets)), targets].mean())
    elif task == "regression":
        errors = outputs.reshape(targets.shape).astype(np.float64) - targets
        metrics["test_rmse"] = float(np.sqrt(np.mean(errors ** 2)))
        if loss in ("auto", "mse"):
            metrics["test_loss"] = float(np.mean(errors ** 2))
    return metrics


def disagreements(recorded: dict[str, float], recomputed: dict[str, float]) -> list[str]:
    """The metrics whose recorded value is not what the predictions give, as
    `name: recorded X, predictions give Y`."""
    found = []
    for name, value in recomputed.items():
        exact = name != "test_loss"
        stated = recorded.get(name)
        if stated is None or (stated != value if exact else
                              abs(stated - value) > LOSS_TOLERANCE * max(1.0, abs(value))):
            found.append(f"{name}: recorded {stated}, the predictions give {value}")
    return found
