"""Evaluation on the test split: reprogrid's (logits, or for the built-in VAE
reconstruction logits, and metrics), or the user's own (`evaluation.factory`). Runs with
the global generators seeded from one stream, the same in every replicate, so that two
runs' outputs differ only where their weights do; the built-in evaluation draws nothing
(the VAE decodes its posterior mean)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch.nn import functional as F

from reprogrid.config import ConfigError
from reprogrid.config.seeds import derive_seed
from reprogrid.inputs import randomness, rngtrace
from reprogrid.inputs.data import Split
from reprogrid.inputs.library import torch_device, torch_dtype
from reprogrid.inputs.models import negative_elbo
from reprogrid.training.loop import loss_function

EVALUATION_KEY = "evaluation.factory"
JUDGED_BY = ("test_accuracy", "test_rmse", "test_loss")  # compare needs one of these

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


class EvaluationRun:
    """What an own `evaluate(model, run)` is handed: the run's config, device, dtype,
    data and seeds (as `fit`'s run has them)."""

    def __init__(self, run_config: dict, split: Split, seeds: dict[str, int]):
        from reprogrid.training.context import tensor_dataset

        self.config, self.split, self._seeds = run_config, split, seeds
        self.device, self.dtype = torch_device(run_config["library"]), torch_dtype(run_config["library"])
        self.train_data = tensor_dataset(split, split.x_train, split.y_train, self.dtype)
        self.test_data = tensor_dataset(split, split.x_test, split.y_test, self.dtype)

    def seed(self, source: str) -> int:
        return self._seeds[source]

    def torch_generator(self, source: str) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed(source))

    def numpy_generator(self, source: str) -> np.random.Generator:
        return np.random.default_rng(self.seed(source))


def evaluate_run(model: torch.nn.Module, run_config: dict, split: Split, seeds: dict[str, int]):
    """(metrics, outputs as float32, targets, global generators drawn) of a trained model,
    by the config's evaluation: the user's `evaluation.factory`, else reprogrid's."""
    randomness.seed_globals(derive_seed(run_config["root_seed"], "evaluate", 0))
    before = rngtrace.snapshot()
    if "evaluation" in run_config:
        metrics, outputs, targets = own_evaluation(model, run_config, split, seeds)
    else:
        metrics, outputs, targets = evaluate_model(model, run_config, split)
    return metrics, outputs, targets, rngtrace.advanced(before, rngtrace.snapshot())


def own_evaluation(model: torch.nn.Module, run_config: dict, split: Split, seeds: dict[str, int]):
    """The user's evaluate(model, run), its return checked against the contract."""
    from reprogrid.inputs.usercode import import_factory

    spec = run_config["evaluation"]["factory"]
    evaluate = import_factory(spec, EVALUATION_KEY)
    started = time.perf_counter()
    try:
        returned = evaluate(model, EvaluationRun(run_config, split, seeds))
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's code: name it and what it raised
        raise ConfigError(EVALUATION_KEY, f"{spec} raised {type(error).__name__}: {error}") from None
    if not isinstance(returned, dict) or set(returned) != {"metrics", "outputs"}:
        raise ConfigError(EVALUATION_KEY, f"{spec} returned {type(returned).__name__}; it must return "
                                          "{'metrics': {name: number}, 'outputs': per-example test outputs}")
    metrics = returned["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        raise ConfigError(EVALUATION_KEY, f"{spec}'s metrics must be a non-empty dict of name: number")
    checked = {}
    for name, value in metrics.items():
        try:
            checked[str(name)] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(EVALUATION_KEY, f"{spec}'s metric {name!r} is {type(value).__name__}, "
                                              "not a number") from None
        if not math.isfinite(checked[str(name)]):
            raise ConfigError(EVALUATION_KEY, f"{spec}'s metric {name!r} is {value}, not a finite number")
    if not any(name in checked for name in JUDGED_BY):
        raise ConfigError(EVALUATION_KEY, f"{spec}'s metrics ({', '.join(checked)}) name none of "
                                          f"{', '.join(JUDGED_BY)}: compare judges runs by one of them")
    outputs = returned["outputs"]
    if isinstance(outputs, torch.Tensor):
        outputs = outputs.detach().float().cpu().numpy()
    outputs = np.asarray(outputs, dtype=np.float32)
    if outputs.ndim == 0 or len(outputs) != len(split.y_test):
        raise ConfigError(EVALUATION_KEY, f"{spec}'s outputs have shape {outputs.shape}; they must hold one "
                                          f"output per test example ({len(split.y_test)} first)")
    checked["eval_seconds"] = time.perf_counter() - started
    return checked, outputs, split.y_test
