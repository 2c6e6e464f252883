"""The experiment config: its vocabulary, the checks a JSON Schema cannot express, and
the resolution of one grid run's complete config.

Types, ranges and defaults are `workflow/schemas/config.schema.yaml`'s; the checks here
assume a schema-valid dict. Pure: no files read, no environment changed, nothing heavy
imported, so validating a config and `snakemake -n` stay cheap. What the tool predicts
from a run config is `reprogrid.prediction`; where runs are recorded,
`reprogrid.tracking_uri`; the data file and the device, `reprogrid.steps.preflight`.
"""

from __future__ import annotations

import copy
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


def reference_libconf(config: dict) -> str:
    """The library configuration others are measured against (cost of determinism,
    implementation effects): `reference_libconf`, else the first one."""
    return config.get("reference_libconf") or next(iter(config["library_configs"]))


def grid_record(config: dict) -> dict:
    """What the grid expects, recorded with the experiment so an audit can tell which
    runs are missing from MLflow alone."""
    return {"cells": [list(cell) for cell in grid_cells(config)], "replicates": config["replicates"]}
