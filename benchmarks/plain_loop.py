"""The limit a grid's overhead is measured against: the same runs in plain PyTorch.

What a user would write instead of reprogrid: a loop over the grid's runs in as many
processes as cores, each process importing torch once; per run, the digits split, the
same model (MLP or CNN, as the config names it), optimizer, epochs, batch size, pixel
noise and thread count, mini-batches by indexing the in-memory tensors with a
`torch.randperm` per epoch (faster than a per-example DataLoader), and the test
accuracy at the end. No reprogrid code, no Snakemake, no MLflow, no hashes, no files
per run: only the metrics are kept.

    python benchmarks/plain_loop.py CONFIG --cores 2 --out metrics.json
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import yaml


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, read from the file the package ships (no sklearn import)."""
    data = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0]) / "datasets" / "data"
    with gzip.open(data / "digits.csv.gz", "rt") as handle:
        table = np.loadtxt(handle, delimiter=",")
    return (table[:, :64] / 16.0).astype(np.float32), table[:, 64].astype(np.int64)


def network(model: dict):
    from torch import nn

    dropout = model.get("dropout", 0.0)
    if model["name"] == "mlp":
        layers, width = [], 64
        for hidden in model.get("hidden", [128, 128]):
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        return nn.Sequential(*layers, nn.Linear(width, 10))
    first, second = model.get("channels", [16, 32])
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, first, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(second * 16, 10),
    )


def run_one(task: dict) -> tuple[str, dict]:
    import torch

    torch.set_num_threads(task["threads"])
    seed = task["seed"]
    torch.manual_seed(seed)
    np.random.seed(seed)
    features, labels = digits()
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = round(0.2 * len(labels))
    test, train = order[:n_test], order[n_test:]
    x_train, y_train = torch.from_numpy(features[train]), torch.from_numpy(labels[train])
    x_test, y_test = torch.from_numpy(features[test]), torch.from_numpy(labels[test])
    model = network(task["model"])
    training = {"epochs": 15, "batch_size": 32, **task["training"]}  # reprogrid's defaults, where unset
    optimizer = torch.optim.SGD(model.parameters(), lr=training.get("lr", 0.05), momentum=training.get("momentum", 0.9))
    noise = task["noise_std"]
    started = time.perf_counter()
    for _ in range(training["epochs"]):
        model.train()
        for batch in torch.randperm(len(y_train)).split(training["batch_size"]):
            inputs, targets = x_train[batch], y_train[batch]
            if noise > 0:
                inputs = inputs + noise * torch.from_numpy(np.random.standard_normal(inputs.shape).astype(np.float32))
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs), targets)
            loss.backward()
            optimizer.step()
    train_seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
    return task["key"], {"test_accuracy": accuracy, "train_seconds": train_seconds}


def tasks(config: dict) -> list[dict]:
    cells = config.get("cells", "all")
    if cells == "all":
        cells = [(s, lc) for s in config["seed_settings"] for lc in config["library_configs"]]
    return [
        {"key": f"{s}/{lc}/r{r}", "seed": index, "model": config["model"], "training": config.get("training", {}),
         "threads": (config["library_configs"][lc] or {}).get("threads", 1),
         "noise_std": config.get("augment", {}).get("noise_std", 0.0)}
        for index, (s, lc, r) in enumerate((s, lc, r) for s, lc in cells for r in range(1, config["replicates"] + 1))
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    if config.get("training", {}).get("optimizer", "sgd") != "sgd" or config["model"]["name"] not in ("mlp", "cnn"):
        raise SystemExit("plain_loop.py mirrors sgd with an mlp or cnn on digits only")
    # fresh processes (spawn), each importing torch once, as a hand-written loop would
    with multiprocessing.get_context("spawn").Pool(args.cores) as pool:
        metrics = dict(pool.imap_unordered(run_one, tasks(config)))
    Path(args.out).write_text(json.dumps(metrics, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
