"""The user's own code and data: `pkg.mod:fn` factories and CSV/NPZ files.

Factories are imported from the workflow's working directory or an installed package.
Every problem is a ConfigError naming the config key and what to fix, raised by the
preflight check (reprogrid.steps.preflight) before any MLflow run exists.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np

from reprogrid.config import ConfigError
from reprogrid.record.hashing import file_digest

TASKS = ("classification", "regression")


def import_factory(spec: str, key: str):
    """The callable named by "package.module:function" (attributes may be dotted)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(key, f"{spec!r} is not of the form 'package.module:function'")
    cwd = os.getcwd()
    if cwd not in sys.path:  # the workflow's working directory, like `python -m`
        sys.path.insert(0, cwd)
    try:
        target = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is the user's to fix
        raise ConfigError(key, f"cannot import module {module_name!r} ({type(error).__name__}: {error}); "
                               f"it must be importable from {cwd} or installed") from None
    from reprogrid.record import provenance

    provenance.stamp(factory_source_files([spec]).values())  # as first used: the code hash refuses a later edit
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(key, f"module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(key, f"{spec!r} is a {type(target).__name__}, not a function or class")
    return target


def call_factory(spec: str, key: str, **kwargs):
    factory = import_factory(spec, key)
    try:
        return factory(**kwargs)
    except Exception as error:  # noqa: BLE001
        raise ConfigError(key, f"{spec}({_arguments(kwargs)}) raised {type(error).__name__}: {error}") from None


def _arguments(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def factory_specs(run_config: dict) -> list[str]:
    """The factories a run config names (dataset, model, loss, training loop)."""
    training = run_config["training"]
    loss = training.get("loss", "")
    return [spec for spec in (run_config["dataset"].get("factory"), run_config["model"].get("factory"),
                              loss if ":" in loss else None, training.get("factory"),
                              run_config.get("evaluation", {}).get("factory")) if spec]


def factory_source_files(specs: list[str]) -> dict[str, Path]:
    """{label: path} of the source files of the imported factories' top-level packages
    (or modules): what the code hash adds for the user's code. Labels are relative to
    the package, so the same code hashes the same wherever it is installed."""
    files = {}
    for spec in specs:
        top = spec.partition(":")[0].split(".")[0]
        location = getattr(sys.modules.get(top), "__file__", None)
        if location is None:
            continue
        location = Path(location)
        if location.name == "__init__.py":
            files |= {f"user:{top}/{p.relative_to(location.parent).as_posix()}": p
                      for p in location.parent.rglob("*.py")}
        else:
            files[f"user:{location.name}"] = location
    return files


# --- datasets ---------------------------------------------------------------------------

def _as_array(value, key: str, what: str, scalar: bool = False) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001
        raise ConfigError(key, f"{what} is not array-like ({type(error).__name__}: {error})") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ConfigError(key, f"{what} must be numeric, got {type(value).__name__} of dtype {array.dtype}")
    if array.ndim == 0 and not scalar:
        raise ConfigError(key, f"{what} must be an array, got a single {type(value).__name__}")
    return array


def _materialize(dataset, key: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Every (features, target) a torch Dataset yields, stacked: the data actually seen."""
    try:
        items = [dataset[i] for i in range(len(dataset))]
    except Exception as error:  # noqa: BLE001
        raise ConfigError(key, f"the {what} dataset cannot be read item by item "
                               f"({type(error).__name__}: {error})") from None
    if not items or not all(isinstance(item, (tuple, list)) and len(item) == 2 for item in items):
        raise ConfigError(key, f"the {what} dataset must yield (features, target) pairs and not be empty")
    features = np.stack([_as_array(x, key, f"{what} features") for x, _ in items])
    targets = np.stack([_as_array(y, key, f"{what} target", scalar=True) for _, y in items])
    return features, targets


def factory_arrays(returned, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from what a dataset factory returned."""
    if isinstance(returned, (tuple, list)) and len(returned) == 4:
        names = ("X_train", "y_train", "X_test", "y_test")
        arrays = [_as_array(v, key, f"returned {n}") for v, n in zip(returned, names)]
    elif isinstance(returned, (tuple, list)) and len(returned) == 2 and all(
            hasattr(d, "__getitem__") and hasattr(d, "__len__") for d in returned):
        arrays = [*_materialize(returned[0], key, "train"), *_materialize(returned[1], key, "test")]
    else:
        arrays = None
    if arrays is not None:
        _checked_finite(*arrays[:2], "the train split", key)
        _checked_finite(*arrays[2:], "the test split", key)
        return tuple(arrays)  # type: ignore[return-value]
    raise ConfigError(key, f"the factory returned {type(returned).__name__}; it must return "
                           "(X_train, y_train, X_test, y_test) arrays or (train, test) torch Datasets")


def read_table(path: Path, target: str | None, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and target of a CSV (header row; `target` names a column) or an NPZ
    (arrays `x` and `target`, default `y`)."""
    if not path.is_file():
        raise ConfigError(key, f"file {str(path)!r} does not exist (paths are relative to the working directory)")
    if path.stat().st_size == 0:
        raise ConfigError(key, f"file {str(path)!r} is empty")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import pandas as pd

            table = pd.read_csv(path)
            if target not in table.columns:
                raise ConfigError(key.rsplit(".", 1)[0] + ".target",
                                  f"{target!r} is not a column of {path.name}; columns are {', '.join(map(str, table.columns))}")
            if table.empty:
                raise ConfigError(key, f"file {str(path)!r} has a header but no rows")
            features = table.drop(columns=[target])
            non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
            if non_numeric:
                raise ConfigError(key, f"column {non_numeric[0]!r} of {path.name} is not numeric; "
                                       "encode it first (every column but the target must be a number)")
            _refuse_missing(table, path, key)
            labels = table[target]
            if not pd.api.types.is_numeric_dtype(labels):  # class names: codes in sorted order
                labels = labels.astype("category").cat.codes
            return _checked_finite(features.to_numpy(dtype=np.float32), labels.to_numpy(), path.name, key)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as stored:
                name = target or "y"
                if "x" not in stored or name not in stored:
                    raise ConfigError(key, f"{path.name} must hold arrays 'x' and {name!r}; it holds {', '.join(stored.files)}")
                return _checked_finite(stored["x"], stored[name], path.name, key)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - unreadable: say so, naming the file
        raise ConfigError(key, f"cannot read {str(path)!r} ({type(error).__name__}: {error})") from None
    raise ConfigError(key, f"{path.name}: only .csv and .npz files are read")


def _refuse_missing(table, path: Path, key: str) -> None:
    """An empty cell, named by column and line (the header is line 1)."""
    missing = table.isna()
    if missing.to_numpy().any():
        row, column = next((r, c) for r, c in zip(*missing.to_numpy().nonzero()))
        raise ConfigError(key, f"{path.name}: column {str(table.columns[column])!r} is empty on line {row + 2}; "
                               "fill or drop that row")


def _checked_finite(features, targets, source: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Refuse NaN or infinity in the data: a run would train to NaN and report chance."""
    for array, what in ((features, "features"), (targets, "targets")):
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
            raise ConfigError(key, f"{source}: {what} hold {float(array[index])} at index {list(index)}; "
                                   "every value must be a finite number")
    return features, targets


def file_record(path: Path) -> dict:
    return {"path": str(path), "sha256": file_digest(path), "size": path.stat().st_size}


def detect_task(stated: str, y_train: np.ndarray, key: str) -> str:
    """Classification for integer (or boolean) targets, regression for floating ones,
    unless the config states it."""
    if stated in TASKS:
        task = stated
    else:
        task = "classification" if np.issubdtype(y_train.dtype, np.integer) or y_train.dtype == bool else "regression"
    if task == "classification":
        if y_train.ndim != 1:
            raise ConfigError(key, f"a classification target must be one label per example, got shape {y_train.shape}")
        if not np.all(np.mod(y_train, 1) == 0) or y_train.min() < 0:
            raise ConfigError(key, "classification labels must be integers 0, 1, 2, ...; "
                                   "or state `task: regression`")
        classes = np.unique(y_train)
        if len(classes) < 2:
            raise ConfigError(key, f"every training label is {classes[0]:g}: one class, so accuracy would be 1.0 "
                                   "whatever the model learns; a classification needs two classes at least")
        unused = int(classes.max()) + 1 - len(classes)
        if unused > len(classes):  # {0, 100000}: a model with 100,001 outputs, nearly all for no class
            raise ConfigError(key, f"the labels are {len(classes)} classes spread over codes 0 to {classes.max():g} "
                                   f"({unused:,} codes no example has), and a model gets one output per code: "
                                   "number the classes 0, 1, ..., K-1")
    return task
