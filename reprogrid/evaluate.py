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

EVAL_BATCH = 4096  # bounds memory on large test sets; results do not depend on it


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, run_config: dict, split: Split):
    """Return (metrics, logits as float32 NumPy, labels as int64 NumPy)."""
    started = time.perf_counter()
    library = run_config["library"]
    device, dtype = torch_device(library), torch_dtype(library)
    model.eval()
    is_vae = run_config["model"]["name"] == "vae"
    features = torch.as_tensor(split.x_test, dtype=dtype)
    labels = torch.as_tensor(split.y_test)
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
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            outputs.append(logits)
    logits = torch.cat(outputs).float().cpu().numpy()
    y_test = split.y_test.astype(np.int64)
    metrics = {"test_loss": loss_sum / len(y_test)}
    if not is_vae:
        metrics["test_accuracy"] = float((logits.argmax(axis=1) == y_test).mean())
    metrics["eval_seconds"] = time.perf_counter() - started
    return metrics, logits, y_test
