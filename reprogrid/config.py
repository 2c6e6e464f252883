"""The experiment config: its vocabulary, defaults, the checks a JSON Schema cannot
express, and the resolution of one grid run's complete config.

Types and ranges are checked by `workflow/schemas/config.schema.yaml` first; the checks
here assume a schema-valid dict. Nothing here imports torch, so validating a config and
`snakemake -n` stay cheap.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

SOURCES = ("split", "init", "order", "dropout", "augment", "sampling", "ulp")
SOURCE_MODES = {source: ("fixed", "vary", "unseeded") for source in SOURCES}
SOURCE_MODES["ulp"] = ("off", "vary")
DEFAULT_MODES = {source: modes[0] for source, modes in SOURCE_MODES.items()}

LIBRARY_DEFAULTS: dict[str, Any] = {
    "threads": 1,
    "interop_threads": 1,
    "deterministic_algorithms": False,
    "warn_only": False,
    "cudnn_benchmark": False,
    "cudnn_deterministic": False,
    "cudnn_allow_tf32": True,
    "matmul_precision": "highest",
    "cublas_workspace_config": None,
    "dtype": "float32",
    "device": "cpu",
    "num_workers": 0,
    "seed_workers": True,
    "seed_python_random": True,
    "seed_numpy_global": True,
}

# Per model / dataset / optimizer, the keys that apply and their defaults. Keys that do
# not apply (e.g. `hidden` for a cnn) are dropped from the resolved run config, so they
# neither change its hash nor trigger reruns.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": [128, 128], "dropout": 0.0},
    "cnn": {"channels": [16, 32], "dropout": 0.0},
    "vae": {"hidden": [128], "latent": 8, "dropout": 0.0},
}
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"test_fraction": 0.2},
    "synthetic": {"test_fraction": 0.2, "n_samples": 2000, "n_classes": 10, "noise": 0.5},
    # the user's own: a factory returns the split itself; a file is split by `split`
    "factory": {"kwargs": {}, "task": "auto"},
    "file": {"target": None, "test_fraction": 0.2, "task": "auto"},
}
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0},
    "adam": {"lr": 0.001, "weight_decay": 0.0},
    "adamw": {"lr": 0.001, "weight_decay": 0.01},
}
SCHEDULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "step": {"step_size": 10, "gamma": 0.1},
    "cosine": {},  # annealed to 0 over `epochs`
}
LOSSES = ("auto", "cross_entropy", "mse")  # or a factory "pkg.mod:fn"; auto: by the task
TRAINING_DEFAULTS = {"epochs": 15, "batch_size": 32, "optimizer": "sgd"}
AUGMENT_DEFAULTS = {"noise_std": 0.0}
DEFAULT_TRACKING_URI = "sqlite:///results/mlflow.db"

# Names become directory names and Snakemake wildcards: keep them to one safe component.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(ValueError):
    """A config problem, phrased as `config key <key>: <problem>`."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"config key {key}: {problem}")
        self.key = key


def key_path(parts) -> str:
    """`seed_settings.init.inti` / `cells[0]` from a sequence of keys and indices."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not re.fullmatch(r"[A-Za-z0-9_]+", str(part)):
            out += f"[{str(part)!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def schema_error_message(error) -> str:
    """A jsonschema ValidationError as `config key <key>: <problem>`.

    jsonschema reports unknown keys and bad names at the parent object; this names the
    offending key itself, which is what a user has to find in their file.
    """
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in known]
        if unknown:
            choices = ", ".join(sorted(known))
            return str(ConfigError(key_path(path + [unknown[0]]), f"unknown key; expected one of {choices}"))
    if error.validator == "propertyNames" or (error.validator == "pattern" and error.relative_schema_path
                                              and "propertyNames" in error.relative_schema_path):
        return str(ConfigError(
            key_path(path + [str(error.instance)]),
            "names must be one path component of letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, at most 64 characters)",
        ))
    if "x-expected" in error.schema and error.validator in ("oneOf", "anyOf", "pattern"):
        return str(ConfigError(key_path(path), f"{error.instance!r} is not valid; expected {error.schema['x-expected']}"))
    if error.validator in ("oneOf", "anyOf") and "description" in error.schema:
        return str(ConfigError(key_path(path), f"{error.instance!r} is not valid; expected {error.schema['description']}"))
    return str(ConfigError(key_path(path), error.message))


def check_config(config: dict) -> None:
    """Raise ConfigError for what the schema cannot express. Assumes a schema-valid dict."""
    for section in ("seed_settings", "library_configs"):
        if not config[section]:
            raise ConfigError(section, "is empty; name at least one entry")
        for name in config[section]:
            if not SAFE_NAME.match(str(name)):
                raise ConfigError(
                    f"{section}.{name}",
                    "names must be one path component of letters, digits, '_', '.', '-' "
                    "(starting with a letter or digit, at most 64 characters)",
                )
    for setting, modes in config["seed_settings"].items():
        for source, mode in (modes or {}).items():
            if source not in SOURCE_MODES:
                raise ConfigError(
                    f"seed_settings.{setting}.{source}",
                    f"unknown source {source!r}; sources are {', '.join(SOURCES)}",
                )
            if mode not in SOURCE_MODES[source]:
                raise ConfigError(
                    f"seed_settings.{setting}.{source}",
                    f"unknown mode {mode!r}; {source} takes {' | '.join(SOURCE_MODES[source])}",
                )
    for libconf, knobs in config["library_configs"].items():
        for knob in knobs or {}:
            if knob not in LIBRARY_DEFAULTS:
                raise ConfigError(
                    f"library_configs.{libconf}.{knob}",
                    f"unknown knob; knobs are {', '.join(LIBRARY_DEFAULTS)}",
                )
    _check_cells(config)
    _check_device(config)
    _check_dataset_file(config["dataset"])
    reference = config.get("reference_libconf")
    if reference is not None and reference not in config["library_configs"]:
        raise ConfigError("reference_libconf", f"unknown library configuration {reference!r}")


def _check_cells(config: dict) -> None:
    cells = config.get("cells", "all")
    if cells == "all":
        return
    if not cells:
        raise ConfigError("cells", "is an empty list; use `all` or list [setting, libconf] pairs")
    seen = set()
    for i, cell in enumerate(cells):
        setting, libconf = cell
        if setting not in config["seed_settings"]:
            raise ConfigError(f"cells[{i}]", f"unknown seed setting {setting!r}")
        if libconf not in config["library_configs"]:
            raise ConfigError(f"cells[{i}]", f"unknown library configuration {libconf!r}")
        if (setting, libconf) in seen:
            raise ConfigError(f"cells[{i}]", f"[{setting}, {libconf}] is listed twice")
        seen.add((setting, libconf))


def _check_dataset_file(dataset: dict) -> None:
    """A file dataset is read now (cheap next to a grid): missing, empty, unreadable or
    without its target column, it stops the workflow before any job."""
    if "path" not in dataset:
        return
    from pathlib import Path

    from reprogrid.user import detect_task, read_table

    if dataset["path"].lower().endswith(".csv") and "target" not in dataset:
        raise ConfigError("dataset.target", "name the CSV column that holds the label or value to predict")
    _, target = read_table(Path(dataset["path"]), dataset.get("target"), "dataset.path")
    detect_task(dataset.get("task", "auto"), target, "dataset.task")


def _check_device(config: dict) -> None:
    wants_cuda = [
        name for name, knobs in config["library_configs"].items()
        if (knobs or {}).get("device") == "cuda"
    ]
    if not wants_cuda:
        return
    import torch  # only paid for when a config asks for CUDA

    if not torch.cuda.is_available():
        raise ConfigError(
            f"library_configs.{wants_cuda[0]}.device",
            "asks for cuda, but torch sees no CUDA device on this machine; use device: cpu",
        )


def grid_cells(config: dict) -> list[tuple[str, str]]:
    """The (setting, libconf) cells of the grid, in config order."""
    cells = config.get("cells", "all")
    if cells == "all":
        return [(s, lc) for s in config["seed_settings"] for lc in config["library_configs"]]
    return [(s, lc) for s, lc in cells]


def run_key(setting: str, libconf: str, replicate: int) -> str:
    return f"{setting}/{libconf}/r{replicate}"


def run_keys(config: dict) -> list[str]:
    return [
        run_key(s, lc, r)
        for s, lc in grid_cells(config)
        for r in range(1, config["replicates"] + 1)
    ]


def seed_modes(config: dict, setting: str) -> dict[str, str]:
    """Every source's mode for a setting; unnamed sources take their default."""
    return {**DEFAULT_MODES, **(config["seed_settings"][setting] or {})}


def library_knobs(config: dict, libconf: str) -> dict[str, Any]:
    return {**LIBRARY_DEFAULTS, **(config["library_configs"][libconf] or {})}


def _resolve_section(section: dict, defaults_by_kind: dict, kind_key: str) -> dict:
    kind = section[kind_key]
    applicable = defaults_by_kind[kind]
    return {kind_key: kind, **{k: section.get(k, v) for k, v in applicable.items()}}


def dataset_kind(dataset: dict) -> str:
    """digits | synthetic (built in), factory | file (the user's own)."""
    if "factory" in dataset:
        return "factory"
    if "path" in dataset:
        return "file"
    return dataset["name"]


def _resolve_dataset(dataset: dict) -> dict:
    kind = dataset_kind(dataset)
    if kind in ("digits", "synthetic"):
        return _resolve_section(dataset, DATASET_DEFAULTS, "name")
    source = {"factory": dataset["factory"]} if kind == "factory" else {"path": dataset["path"]}
    return {**source, **{k: dataset.get(k, v) for k, v in DATASET_DEFAULTS[kind].items()}}


def _resolve_model(model: dict) -> dict:
    if "factory" in model:
        return {"factory": model["factory"], "kwargs": model.get("kwargs", {})}
    return _resolve_section(model, MODEL_DEFAULTS, "name")


def _resolve_training(training: dict) -> dict:
    training = {**TRAINING_DEFAULTS, **training}
    optimizer = training["optimizer"]
    resolved = {
        "epochs": training["epochs"],
        "batch_size": training["batch_size"],
        "optimizer": optimizer,
        **{k: training.get(k, v) for k, v in OPTIMIZER_DEFAULTS[optimizer].items()},
    }
    # Left out at their defaults, so configs written before they existed keep their
    # config hash (and Snakemake does not rerun their runs).
    if training.get("loss", "auto") != "auto":
        resolved["loss"] = training["loss"]
    schedule = training.get("lr_schedule", "none")
    if schedule != "none":
        resolved["lr_schedule"] = schedule
        resolved |= {k: training.get(k, v) for k, v in SCHEDULE_DEFAULTS[schedule].items()}
    return resolved


def resolve_run_config(config: dict, setting: str, libconf: str, replicate: int) -> dict:
    """Everything that determines one grid run, with every default filled in.

    Its canonical JSON is what the config hash covers. Where the run is logged (tracking
    URI, experiment) is deliberately not part of it.
    """
    return copy.deepcopy({
        "run_key": run_key(setting, libconf, replicate),
        "setting": setting,
        "libconf": libconf,
        "replicate": replicate,
        "root_seed": config["root_seed"],
        "seed_modes": seed_modes(config, setting),
        "library": library_knobs(config, libconf),
        "dataset": _resolve_dataset(config["dataset"]),
        "model": _resolve_model(config["model"]),
        "training": _resolve_training(config.get("training", {})),
        "augment": {**AUGMENT_DEFAULTS, **config.get("augment", {})},
    })


def uses_own_code(config: dict) -> bool:
    """Whether the config names the user's own model, data, or loss (then a preflight
    check imports and calls them before any run is created)."""
    return (dataset_kind(config["dataset"]) in ("factory", "file") or "factory" in config["model"]
            or ":" in str(config.get("training", {}).get("loss", "")))


def expect_bitwise(run_config: dict) -> bool:
    """The tool's prediction that every replicate of this run's cell is bit-identical.

    True when no source the run draws from varies or is left unseeded, every generator
    those sources feed is seeded (NumPy's global one when augmentation is on and runs in
    the main process), and on CUDA deterministic algorithms are on.
    """
    return expect_rerun_bitwise(run_config) and not varied_sources(run_config)


def expect_rerun_bitwise(run_config: dict) -> bool:
    """The prediction that running this same run again (same replicate, same seeds)
    gives the same bits: the cell-level prediction, except that varied sources are
    allowed (a rerun draws their same seeds again)."""
    drawn = active_sources(run_config)
    if any(run_config["seed_modes"][source] == "unseeded" for source in drawn):
        return False
    library = run_config["library"]
    if "augment" in drawn and library["num_workers"] == 0 and not library["seed_numpy_global"]:
        return False
    # on a GPU (or one `auto` may find), only deterministic algorithms make kernels repeat
    if library["device"] in ("cuda", "auto") and not library["deterministic_algorithms"]:
        return False
    return True


def active_sources(run_config: dict) -> list[str]:
    """The sources this run actually draws from; the others' modes cannot matter."""
    drawn = {
        "split": True,  # a dataset factory runs with the global generators seeded by it
        "init": True,
        "order": True,
        # a factory model's dropout cannot be seen from the config: assume it draws
        "dropout": run_config["model"].get("dropout", 1.0) > 0,
        "augment": run_config["augment"]["noise_std"] > 0,
        "sampling": run_config["model"].get("name") == "vae",
        "ulp": True,
    }
    return [source for source in SOURCES if drawn[source]]


def varied_sources(run_config: dict) -> list[str]:
    """Active sources whose draws differ between replicates (varied or unseeded)."""
    modes = run_config["seed_modes"]
    return [s for s in active_sources(run_config) if modes[s] in ("vary", "unseeded")]


def reference_libconf(config: dict) -> str:
    """The library configuration others are measured against (cost of determinism,
    implementation effects): `reference_libconf`, else the first one."""
    return config.get("reference_libconf") or next(iter(config["library_configs"]))


def grid_record(config: dict) -> dict:
    """What the grid expects, recorded with the experiment so an audit can tell which
    runs are missing from MLflow alone."""
    return {"cells": [list(cell) for cell in grid_cells(config)], "replicates": config["replicates"]}


def tracking_uri(config: dict) -> str:
    """MLFLOW_TRACKING_URI wins over the config's `tracking_uri`. Credentials in it are
    moved to the environment (see `credential_free`)."""
    return credential_free(
        os.environ.get("MLFLOW_TRACKING_URI")
        or config.get("tracking_uri")
        or DEFAULT_TRACKING_URI
    )


def credential_free(uri: str) -> str:
    """The URI without `user:password@`, which go to MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD (MLflow's own way to authenticate, inherited by every job):
    the URI is written to results/tracking.json, logs and reports, a password must not be."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    if parts.username:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(parts.username))
    if parts.password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(parts.password))
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
