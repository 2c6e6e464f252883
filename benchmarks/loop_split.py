"""Where the built-in training loop's time goes, part by part, against the plain loop's.

    python benchmarks/loop_split.py --epochs 30

The *medium* workload's run (benchmarks/configs/medium.yaml: the CNN, batch 32, pixel
noise, one thread) taken apart in one process, each part timed over whole epochs of the
digits' training split, the parts interleaved epoch by epoch so that the machine's drift
falls on all alike; medians per epoch:
- fetching the batches: the plain loop's `torch.randperm(n).split(32)` and indexing, against
  reprogrid's loader (`run.loader`'s DataLoader over a RandomSampler with its own
  generator, AugmentedBatches fetching a batch at a time);
- the steps (forward, backward, optimizer step) on batches fetched beforehand: as the plain
  loop takes them, with what the built-in loop adds per step (`loss.item()`, `.to(device)`
  of three tensors), and with that inside the hooks that watch a fit (streams.TrainingStart);
- `run.epoch_end`'s own work: the weights' fingerprint and the global generators' trace.
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
from torch.nn import functional as F
from torch.utils.data import DataLoader, RandomSampler

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from plain_loop import digits, network  # noqa: E402

from reprogrid.inputs import rngtrace  # noqa: E402
from reprogrid.record.hashing import weights_digest  # noqa: E402
from reprogrid.training.loop import AugmentedBatches, _as_batch  # noqa: E402
from reprogrid.training.streams import TrainingStart  # noqa: E402

NOISE, BATCH = 0.05, 32


def plain_batches(x, y):
    for batch in torch.randperm(len(y)).split(BATCH):
        inputs = x[batch] + NOISE * torch.from_numpy(np.random.standard_normal((len(batch), x.shape[1])).astype(np.float32))
        yield inputs, x[batch], y[batch]


def reprogrid_loader(x, y) -> DataLoader:
    """As run.loader builds it for the built-in fit, with no loader workers."""
    dataset = AugmentedBatches(x, y, NOISE)
    return DataLoader(dataset, batch_size=BATCH, sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(1)),
                      num_workers=0, generator=None, collate_fn=_as_batch)


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
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    features, labels = digits()
    train = np.random.default_rng(0).permutation(len(labels))[round(0.2 * len(labels)):]
    x, y = torch.from_numpy(features[train]), torch.from_numpy(labels[train])
    model = network({"name": "cnn", "channels": [16, 32], "dropout": 0.2})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = reprogrid_loader(x, y)
    parts = {name: [] for name in ("fetch_plain", "fetch_reprogrid", "steps_plain", "steps_builtin",
                                   "steps_builtin_watched", "epoch_end")}
    steps(model, optimizer, list(plain_batches(x, y)), as_builtin=False)  # warm-up: first-use imports
    since = rngtrace.snapshot()
    for _ in range(args.epochs):
        parts["fetch_plain"].append(timed(list, plain_batches(x, y)))
        parts["fetch_reprogrid"].append(timed(list, loader))
        batches = list(plain_batches(x, y))
        parts["steps_plain"].append(timed(steps, model, optimizer, batches, as_builtin=False))
        parts["steps_builtin"].append(timed(steps, model, optimizer, batches, as_builtin=True))
        with TrainingStart(lambda why: None, RuntimeError) as watch:  # fresh: its forward hook goes at start
            watch.start("measured")  # as after a fit's first sign of training
            watch.stepped = True
            parts["steps_builtin_watched"].append(timed(steps, model, optimizer, batches, as_builtin=True))

        def epoch_end():
            nonlocal since
            now = rngtrace.snapshot()
            weights_digest(model.state_dict()), rngtrace.advanced(since, now)
            since = now

        parts["epoch_end"].append(timed(epoch_end))
    median_ms = {name: round(statistics.median(values) * 1000, 3) for name, values in parts.items()}
    plain = median_ms["fetch_plain"] + median_ms["steps_plain"]
    builtin = median_ms["fetch_reprogrid"] + median_ms["steps_builtin_watched"] + median_ms["epoch_end"]
    print(json.dumps({
        "workload": "benchmarks/configs/medium.yaml's run: CNN [16, 32], batch 32, noise 0.05, 1 thread",
        "epochs_measured": args.epochs, "batches_per_epoch": len(loader),
        "median_ms_per_epoch": median_ms,
        "plain_epoch_ms": round(plain, 3), "builtin_epoch_ms": round(builtin, 3),
        "builtin_over_plain": round(builtin / plain, 3),
    }, indent=1))


if __name__ == "__main__":
    main()
