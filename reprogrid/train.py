"""Training: build the model under the `init` stream, nudge it (ulp), train, fingerprint
the weights after every epoch. Pure computation: no files, no MLflow."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from reprogrid import randomness
from reprogrid.data import Split
from reprogrid.hashing import weights_digest
from reprogrid.library import torch_device, torch_dtype
from reprogrid.models import build_model, negative_elbo


class AugmentedBatches(Dataset):
    """Indexed by a whole batch of indices (the loader runs with batch_size=None), so
    one epoch costs one indexing per batch, not one per example.

    Returns (inputs, clean inputs, labels). Pixel noise is drawn from NumPy's *global*
    generator in whichever process fetches the batch, like much third-party
    augmentation code.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, noise_std: float):
        self.features, self.labels, self.noise_std = features, labels, noise_std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices):
        index = torch.as_tensor(indices)
        clean = self.features[index]
        if self.noise_std <= 0:
            return clean, clean, self.labels[index]
        noise = torch.from_numpy(np.random.standard_normal(tuple(clean.shape)))
        return clean + self.noise_std * noise.to(clean.dtype), clean, self.labels[index]


class NumericalDivergence(ArithmeticError):
    """The training loss became NaN or infinite: the run failed, it did not train."""


@dataclass
class TrainResult:
    model: torch.nn.Module
    init_weights: str
    epochs: list[dict] = field(default_factory=list)  # {"epoch", "train_loss", "weights"}
    train_seconds: float = 0.0
    ulp_nudge: dict | None = None


def make_loader(split: Split, run_config: dict, seeds: dict) -> DataLoader:
    library = run_config["library"]
    dtype = torch_dtype(library)
    targets = torch.as_tensor(split.y_train, dtype=dtype if split.task == "regression" else None)
    dataset = AugmentedBatches(
        torch.as_tensor(split.x_train, dtype=dtype), targets, run_config["augment"]["noise_std"]
    )
    batches = BatchSampler(
        RandomSampler(dataset, generator=randomness.order_generator(seeds)),
        batch_size=run_config["training"]["batch_size"],
        drop_last=False,
    )
    workers = library["num_workers"]
    return DataLoader(
        dataset,
        sampler=batches,
        batch_size=None,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=randomness.loader_generator(seeds, library),
    )


def make_optimizer(model: torch.nn.Module, training: dict) -> torch.optim.Optimizer:
    name, params = training["optimizer"], model.parameters()
    if name == "sgd":
        return torch.optim.SGD(params, lr=training["lr"], momentum=training["momentum"],
                               weight_decay=training["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(params, lr=training["lr"], weight_decay=training["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=training["lr"], weight_decay=training["weight_decay"])
    raise ValueError(f"unknown optimizer {name!r}")


def make_schedule(optimizer: torch.optim.Optimizer, training: dict):
    """The learning-rate schedule, stepped once per epoch; None for a constant rate."""
    schedule = training.get("lr_schedule", "none")
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, training["step_size"], training["gamma"])
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=training["epochs"])
    return None


def mean_squared_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(outputs.reshape(targets.shape), targets)


def loss_function(training: dict, task: str):
    """loss(outputs, targets) -> the batch's mean loss: cross_entropy, mse, or the user's."""
    name = training.get("loss", "auto")
    if name == "auto":
        name = "cross_entropy" if task == "classification" else "mse"
    if name == "cross_entropy":
        return F.cross_entropy
    if name == "mse":
        return mean_squared_error
    from reprogrid import user

    return user.import_factory(name, "training.loss")


def prepare_model(run_config: dict, seeds: dict, split: Split) -> tuple[torch.nn.Module, dict | None]:
    """The initial model: built under the `init` stream, then nudged if `ulp` varies."""
    library = run_config["library"]
    randomness.seed_init(seeds)
    model = build_model(run_config["model"], split.n_classes, split.n_features)
    model = model.to(device=torch_device(library), dtype=torch_dtype(library))
    nudge = None
    if run_config["seed_modes"]["ulp"] != "off":
        nudge = randomness.nudge_one_ulp(model, seeds["ulp"])
    return model, nudge


def train_model(run_config: dict, seeds: dict, split: Split) -> TrainResult:
    started = time.perf_counter()
    library = run_config["library"]
    device = torch_device(library)
    model, nudge = prepare_model(run_config, seeds, split)
    result = TrainResult(model, weights_digest(model.state_dict()), ulp_nudge=nudge)

    is_vae = run_config["model"].get("name") == "vae"
    sampling = randomness.sampling_generator(seeds, device) if is_vae else None
    optimizer = make_optimizer(model, run_config["training"])
    schedule = make_schedule(optimizer, run_config["training"])
    loss_of = loss_function(run_config["training"], split.task)
    randomness.seed_training_globals(seeds, library)
    loader = make_loader(split, run_config, seeds)

    for epoch in range(1, run_config["training"]["epochs"] + 1):
        model.train()
        loss_sum, seen = 0.0, 0
        for inputs, clean, labels in loader:
            inputs, clean, labels = inputs.to(device), clean.to(device), labels.to(device)
            optimizer.zero_grad(set_to_none=True)
            if is_vae:
                loss = negative_elbo(*model(inputs, sampling), clean)
            else:
                loss = loss_of(model(inputs), labels)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            seen += len(labels)
        if not math.isfinite(loss_sum):
            raise NumericalDivergence(
                f"run {run_config['run_key']}: the training loss became {loss_sum / seen} in epoch {epoch}; "
                "the run diverged numerically (a smaller training.lr, or normalised data, may help)")
        if schedule is not None:
            schedule.step()
        result.epochs.append({
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "weights": weights_digest(model.state_dict()),
        })
    result.train_seconds = time.perf_counter() - started
    return result
