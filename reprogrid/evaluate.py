"""Evaluation on the test split: logits (or, for the VAE, reconstruction logits) and
metrics. Deterministic given the weights: the VAE decodes its posterior mean."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.nn import functional as F

from reprogrid.data import Split
from reprogrid.library import torch_device, torch_dtype
from reprogrid.models import negative_elbo
from reprogrid.train import loss_function

EVAL_BATCH = 4096  # bounds memory on large test sets; results do not depend on it


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, run_config: dict, split: Split):
    """Return (metrics, outputs as float32 NumPy, targets as NumPy: int64 labels, or
    float32 values for regression). Outputs are logits when the model classifies."""
    started = time.perf_counter()
    library = run_config["library"]
    device, dtype = torch_device(library), torch_dtype(library)
    model.eval()
    is_vae = run_config["model"].get("name") == "vae"
    regression = split.task == "regression"
    loss_of = loss_function(run_config["training"], split.task)
    features = torch.as_tensor(split.x_test, dtype=dtype)
    labels = torch.as_tensor(split.y_test, dtype=dtype if regression else None)
    outputs, loss_sum = [], 0.0
    for start in range(0, len(labels), EVAL_BATCH):
        x = features[start:start + EVAL_BATCH].to(device)
        y = labels[start:start + EVAL_BATCH].to(device)
        if is_vae:
            recon, mu, logvar = model(x)
            loss_sum += negative_elbo(recon, mu, logvar, x).item() * len(y)
            outputs.append(recon)
        else:
            logits = model(x)
            if loss_of is F.cross_entropy:
                loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            else:  # a mean over the batch
                loss_sum += float(loss_of(logits, y)) * len(y)
            outputs.append(logits)
    logits = torch.cat(outputs).float().cpu().numpy()
    y_test = split.y_test
    metrics = {"test_loss": loss_sum / len(y_test)}
    if regression:
        errors = logits.reshape(y_test.shape).astype(np.float64) - y_test
        metrics["test_rmse"] = float(np.sqrt(np.mean(errors ** 2)))
    elif not is_vae:
        metrics["test_accuracy"] = float((logits.argmax(axis=1) == y_test).mean())
    metrics["eval_seconds"] = time.perf_counter() - started
    return metrics, logits, y_test
