"""Datasets and the train/test split, as NumPy arrays (no torch).

`digits` is scikit-learn's 8x8 handwritten digits, read straight from the CSV file that
ships inside the scikit-learn package (importing scikit-learn would cost a second and
buys nothing here). `synthetic` is generated: ten noisy 8x8 class templates. Both give
features in [0, 1]-ish float32 of width 64 and int64 labels; the `split` source's seed
drives the split (and, for `synthetic`, the generation).
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SIDE = 8
N_FEATURES = IMAGE_SIDE * IMAGE_SIDE


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def digits_path() -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("dataset digits needs scikit-learn installed (it ships the data file)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(digits_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    features = (table[:, :N_FEATURES] / 16.0).astype(np.float32)
    return features, table[:, N_FEATURES].astype(np.int64)


def make_synthetic(rng: np.random.Generator, n_samples: int, n_classes: int, noise: float):
    templates = rng.random((n_classes, N_FEATURES))
    labels = rng.integers(0, n_classes, size=n_samples)
    features = templates[labels] + noise * rng.standard_normal((n_samples, N_FEATURES))
    return np.clip(features, 0.0, 1.0).astype(np.float32), labels.astype(np.int64)


def load_split(dataset: dict, split_seed: int) -> Split:
    """The dataset of a resolved run config, split into train and test by `split_seed`."""
    rng = np.random.default_rng(split_seed)
    if dataset["name"] == "digits":
        features, labels = load_digits()
    elif dataset["name"] == "synthetic":
        features, labels = make_synthetic(
            rng, dataset["n_samples"], dataset["n_classes"], dataset["noise"]
        )
    else:
        raise ValueError(f"unknown dataset {dataset['name']!r}")
    order = rng.permutation(len(labels))
    n_test = max(1, round(dataset["test_fraction"] * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return Split(features[train], labels[train], features[test], labels[test])
