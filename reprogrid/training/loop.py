"""The built-in training loop: one `fit(run)` among others (reprogrid.training.trainer
calls it or the user's own through the same `run`): the config's model, optimizer,
schedule and loss, with pixel noise drawn from NumPy's global generator. Pure
computation: no files, no MLflow."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from reprogrid.inputs.models import negative_elbo
from reprogrid.training.context import Run


class AugmentedBatches(Dataset):
    """Fetched a whole batch of indices at a time (`__getitems__`), so one epoch costs
    one indexing per batch, not one per example.

    Returns (inputs, clean inputs, labels). Pixel noise is drawn from NumPy's *global*
    generator in whichever process fetches the batch, like much third-party
    augmentation code.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, noise_std: float):
        self.features, self.labels, self.noise_std = features, labels, noise_std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices):
        """A whole batch at once (the loader's fetcher prefers this to one item at a time)."""
        index = torch.as_tensor(indices)
        clean = self.features[index]
        if self.noise_std <= 0:
            return clean, clean, self.labels[index]
        noise = torch.from_numpy(np.random.standard_normal(tuple(clean.shape)))
        return clean + self.noise_std * noise.to(clean.dtype), clean, self.labels[index]

    def __getitem__(self, index):
        return tuple(part[0] for part in self.__getitems__([index]))


def _as_batch(batch):
    """The loader's collate step for AugmentedBatches: the batch is already assembled."""
    return batch


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
    from reprogrid.inputs import usercode as user

    return user.import_factory(name, "training.loss")


def fit(run: Run) -> torch.nn.Module:
    """The built-in training loop: the config's model, optimizer, schedule and loss, with
    pixel noise from NumPy's global generator (reprogrid.training.loop.AugmentedBatches)."""
    training, split = run.config["training"], run.split
    model = run.model()
    is_vae = run.config["model"].get("name") == "vae"
    sampling = run.torch_generator("sampling") if is_vae else None
    optimizer = make_optimizer(model, training)
    schedule = make_schedule(optimizer, training)
    loss_of = loss_function(training, split.task)
    targets = torch.as_tensor(split.y_train, dtype=run.dtype if split.task == "regression" else None)
    batches = AugmentedBatches(torch.as_tensor(split.x_train, dtype=run.dtype), targets,
                               run.config["augment"]["noise_std"])
    loader = run.loader(batches, training["batch_size"], shuffle=True, collate_fn=_as_batch)
    first = run.resumable(model=model, optimizer=optimizer, scheduler=schedule)
    for epoch in range(first, training["epochs"] + 1):
        model.train()
        loss_sum, seen = 0.0, 0
        for inputs, clean, labels in loader:
            inputs, clean, labels = inputs.to(run.device), clean.to(run.device), labels.to(run.device)
            optimizer.zero_grad(set_to_none=True)
            if is_vae:
                loss = negative_elbo(*model(inputs, sampling), clean)
            else:
                loss = loss_of(model(inputs), labels)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            seen += len(labels)
        if schedule is not None:
            schedule.step()
        run.epoch_end(model, epoch, train_loss=loss_sum / seen)  # last: it may checkpoint the epoch
    return model


