"""Datasets and the train/test split, as NumPy arrays (no torch).

`digits` is scikit-learn's 8x8 handwritten digits, read straight from the CSV file that
ships inside the scikit-learn package (importing scikit-learn would cost a second and
buys nothing here). `synthetic` is generated: ten noisy 8x8 class templates. Both give
features in [0, 1]-ish float32 of width 64 and int64 labels; the `split` source's seed
drives the split (and, for `synthetic`, the generation). The user's own data (a
factory or a CSV/NPZ file) comes through reprogrid.inputs.usercode: a factory returns its split,
a file is split like the built-ins.
"""

from __future__ import annotations

import dataclasses
import functools
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
    y_train: np.ndarray  # int64 labels to classify, float32 targets to regress
    x_test: np.ndarray
    y_test: np.ndarray
    task: str = "classification"
    file: dict | None = None  # a file dataset's path, sha256 and size
    drawn: tuple[str, ...] = ()  # global generators a dataset factory drew from (reprogrid.inputs.rngtrace)

    @property
    def n_features(self) -> int:
        """Inputs per example, flattened: what a built-in model takes."""
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1 if self.task == "classification" else 0


def digits_path() -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("dataset digits needs scikit-learn installed (it ships the data file)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


@functools.cache
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Parsed once per process: the warm server parses it before it forks, so no job does.
    Read-only, as every caller shares them; a split indexes copies out of them."""
    with gzip.open(digits_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    features = (table[:, :N_FEATURES] / 16.0).astype(np.float32)
    labels = table[:, N_FEATURES].astype(np.int64)
    features.setflags(write=False), labels.setflags(write=False)
    return features, labels


def make_synthetic(rng: np.random.Generator, n_samples: int, n_classes: int, noise: float):
    templates = rng.random((n_classes, N_FEATURES))
    labels = rng.integers(0, n_classes, size=n_samples)
    features = templates[labels] + noise * rng.standard_normal((n_samples, N_FEATURES))
    return np.clip(features, 0.0, 1.0).astype(np.float32), labels.astype(np.int64)


def load_split(dataset: dict, split_seed: int) -> Split:
    """The dataset of a resolved run config, split into train and test by `split_seed`
    (a factory's own split is kept)."""
    from reprogrid.config import dataset_kind
    from reprogrid.inputs import usercode as user

    kind = dataset_kind(dataset)
    rng = np.random.default_rng(split_seed)
    file = None
    if kind == "factory":
        from reprogrid.inputs import rngtrace
        from reprogrid.inputs.randomness import seed_globals  # imports torch: only for factories

        seed_globals(split_seed)  # whatever randomness the factory uses is the `split` stream's
        before = rngtrace.snapshot()
        returned = user.call_factory(dataset["factory"], "dataset.factory", **dataset["kwargs"])
        split = _typed(*user.factory_arrays(returned, "dataset.factory"), dataset["task"], "dataset.factory")
        return dataclasses.replace(split, drawn=tuple(rngtrace.advanced(before, rngtrace.snapshot())))
    if kind == "file":
        path = Path(dataset["path"])
        features, labels = user.read_table(path, dataset["target"], "dataset.path")
        file = user.file_record(path)
    elif kind == "digits":
        features, labels = load_digits()
    else:
        features, labels = make_synthetic(
            rng, dataset["n_samples"], dataset["n_classes"], dataset["noise"]
        )
    order = rng.permutation(len(labels))
    n_test = max(1, round(dataset["test_fraction"] * len(labels)))
    test, train = order[:n_test], order[n_test:]
    if kind == "file":
        if len(train) < 1:
            raise user.ConfigError("dataset.path", f"{len(labels)} rows leave nothing to train on")
        return _typed(features[train], labels[train], features[test], labels[test], dataset["task"],
                      "dataset.path", file)
    return Split(features[train], labels[train], features[test], labels[test])


def _typed(x_train, y_train, x_test, y_test, task: str, key: str, file: dict | None = None) -> Split:
    """The user's arrays with checked shapes, float32 features, and targets typed by task."""
    from reprogrid.inputs import usercode as user

    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) == 0:
            raise user.ConfigError(key, f"the {part} split is empty")
        if len(x) != len(y):
            raise user.ConfigError(key, f"{part}: {len(x)} feature rows but {len(y)} targets")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise user.ConfigError(key, f"train features have shape {x_train.shape[1:]} per example, test {x_test.shape[1:]}")
    task = user.detect_task(task, y_train, key)
    target_dtype = np.int64 if task == "classification" else np.float32
    return Split(np.asarray(x_train, np.float32), np.asarray(y_train, target_dtype),
                 np.asarray(x_test, np.float32), np.asarray(y_test, target_dtype), task, file)
