"""Where the built-in training loop's time goes, part by part, against the plain loop's.

    python benchmarks/loop_split.py --epochs 30

The *medium* workload's run (benchmarks/configs/medium.yaml: the CNN, batch 32, pixel
noise, one thread) taken apart in one process, each part timed over whole epochs of the
digits' training split, the parts interleaved epoch by epoch so that the machine's drift
falls on all alike; medians per epoch:
- fetching the batches: the plain loop's `torch.randperm(n).split(32)` and indexing, against
  the built-in fit's loader (`run.loader` of a real Run, over AugmentedBatches fetching a
  batch at a time);
- the steps (forward, backward, optimizer step) on batches fetched beforehand: as the plain
  loop takes them, with what the built-in loop adds per step (`loss.item()`, `.to(device)`
  of three tensors), and with that inside the hooks that watch a fit (streams.TrainingStart);
- `run.epoch_end` itself: the weights' fingerprint and the global generators' trace.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from plain_loop import network  # noqa: E402

from reprogrid import config as cfg  # noqa: E402
from reprogrid.config.seeds import derive_seeds, draw_unseeded  # noqa: E402
from reprogrid.inputs.data import load_split  # noqa: E402
from reprogrid.inputs.library import apply_library  # noqa: E402
from reprogrid.training.context import Run  # noqa: E402
from reprogrid.training.loop import AugmentedBatches, _as_batch  # noqa: E402
from reprogrid.training.streams import TrainingStart  # noqa: E402

MEDIUM = HERE / "configs" / "medium.yaml"


def plain_batches(x, y, noise: float, batch_size: int):
    for batch in torch.randperm(len(y)).split(batch_size):
        inputs = x[batch] + noise * torch.from_numpy(np.random.standard_normal((len(batch), x.shape[1])).astype(np.float32))
        yield inputs, x[batch], y[batch]


def steps(model, optimizer, batches, as_builtin: bool) -> None:
    device = torch.device("cpu")
    for inputs, clean, labels in batches:
        if as_builtin:
            inputs, clean, labels = inputs.to(device), clean.to(device), labels.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
        if as_builtin:
            loss.item()


def timed(work, *args, **kwargs) -> float:
    started = time.perf_counter()
    work(*args, **kwargs)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    config = yaml.safe_load(MEDIUM.read_text())
    run_config = cfg.resolve_run_config(config, "control", "t1", 1)
    seeds = draw_unseeded(derive_seeds(config["root_seed"], run_config["seed_modes"], 1))
    apply_library(run_config["library"])  # one thread, as the workflow's train job
    split = load_split(run_config["dataset"], seeds["split"])
    run = Run(run_config, seeds, split)
    noise, batch_size = run_config["augment"]["noise_std"], run_config["training"]["batch_size"]
    x, y = torch.as_tensor(split.x_train), torch.as_tensor(split.y_train)
    loader = run.loader(AugmentedBatches(x, y, noise), batch_size, shuffle=True, collate_fn=_as_batch)
    model = network(run_config["model"])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    parts = {name: [] for name in ("fetch_plain", "fetch_reprogrid", "steps_plain", "steps_builtin",
                                   "steps_builtin_watched", "epoch_end")}
    steps(model, optimizer, list(plain_batches(x, y, noise, batch_size)), as_builtin=False)  # first-use imports
    for epoch in range(1, args.epochs + 1):
        parts["fetch_plain"].append(timed(list, plain_batches(x, y, noise, batch_size)))
        parts["fetch_reprogrid"].append(timed(list, loader))
        batches = list(plain_batches(x, y, noise, batch_size))
        parts["steps_plain"].append(timed(steps, model, optimizer, batches, as_builtin=False))
        parts["steps_builtin"].append(timed(steps, model, optimizer, batches, as_builtin=True))
        with TrainingStart(lambda why: None, RuntimeError) as watch:  # fresh: its forward hook goes at start
            watch.start("measured")  # as after a fit's first sign of training
            watch.stepped = True
            parts["steps_builtin_watched"].append(timed(steps, model, optimizer, batches, as_builtin=True))
        parts["epoch_end"].append(timed(run.epoch_end, model, epoch, train_loss=1.0))
    median_ms = {name: round(statistics.median(values) * 1000, 3) for name, values in parts.items()}
    plain = median_ms["fetch_plain"] + median_ms["steps_plain"]
    builtin = median_ms["fetch_reprogrid"] + median_ms["steps_builtin_watched"] + median_ms["epoch_end"]
    print(json.dumps({
        "workload": f"{MEDIUM.relative_to(HERE.parent)}: control/t1/r1",
        "epochs_measured": args.epochs, "batches_per_epoch": len(loader),
        "median_ms_per_epoch": median_ms,
        "plain_epoch_ms": round(plain, 3), "builtin_epoch_ms": round(builtin, 3),
        "builtin_over_plain": round(builtin / plain, 3),
    }, indent=1))


if __name__ == "__main__":
    main()
