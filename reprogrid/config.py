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
import math
import re
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def _schema() -> dict:
    if not SCHEMA_PATH.is_file():
        raise RuntimeError(f"reprogrid's config schema is not at {SCHEMA_PATH}: run reprogrid from a checkout "
                           "of its repository (pip install -e .)")
    with open(SCHEMA_PATH, encoding="utf-8") as handle:  # LibYAML's loader where present: 20x faster
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _resolved(schema: dict, node: dict) -> dict:
    """A schema node with its `$ref` (within the file) followed."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


# Everything below is read from the schema, the one place vocabulary and defaults are
# written down.
SCHEMA = _schema()
_PROPERTIES = SCHEMA["properties"]
_SOURCE_SCHEMAS = {name: _resolved(SCHEMA, node) for name, node in
                   _PROPERTIES["seed_settings"]["additionalProperties"]["properties"].items()}
SOURCES = tuple(_SOURCE_SCHEMAS)
SOURCE_MODES = {source: tuple(node["enum"]) for source, node in _SOURCE_SCHEMAS.items()}
DEFAULT_MODES = {source: node["default"] for source, node in _SOURCE_SCHEMAS.items()}
LIBRARY_DEFAULTS: dict[str, Any] = {
    knob: node["default"] for knob, node in _PROPERTIES["library_configs"]["additionalProperties"]["properties"].items()
}
# Per model / dataset kind / optimizer / schedule, the keys that apply and their
# defaults. Keys that do not apply (e.g. `hidden` for a cnn) are dropped from the
# resolved run config, so they neither change its hash nor trigger reruns.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = _PROPERTIES["model"]["x-defaults"]
DATASET_DEFAULTS: dict[str, dict[str, Any]] = _PROPERTIES["dataset"]["x-defaults"]
_TRAINING = _PROPERTIES["training"]["properties"]
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = _TRAINING["optimizer"]["x-defaults"]
SCHEDULE_DEFAULTS: dict[str, dict[str, Any]] = _TRAINING["lr_schedule"]["x-defaults"]
# the built-in loop's (`x-default`: Snakemake fills in `default`s, and a fit's training
# section holds only what its config writes)
TRAINING_DEFAULTS = {key: _TRAINING[key]["x-default"] for key in ("epochs", "batch_size", "optimizer")}
AUGMENT_DEFAULTS = {key: node["default"] for key, node in _PROPERTIES["augment"]["properties"].items()}


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


def check_finite(node: Any, path: tuple = ()) -> None:
    """Refuse NaN and infinity anywhere in the config (YAML's `.nan`, `.inf`): a schema's
    bounds let NaN through (every comparison with it is false), and a run would train to
    NaN losses. Runs before the schema check, so the message names the number's key."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(key_path(path), f"{node!r} is not a finite number")
    if isinstance(node, dict):
        for key, value in node.items():
            check_finite(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_finite(value, (*path, index))


# What planning a grid costs Snakemake per job, measured by `benchmarks/scale.py` (a
# dry run of 10,000 runs, 30,003 jobs: 29.45 s and 716 MiB on the CI machine at d10c2d3).
PLAN_SECONDS_PER_JOB, PLAN_MIB_PER_JOB = 29.45 / 30_003, 716 / 30_003
LARGE_GRID_JOBS = 15_000


def scale_warning(config: dict) -> str | None:
    """For a very large grid, what planning it will cost before the first job runs."""
    jobs = 3 * len(grid_cells(config)) * config["replicates"] + 3
    if jobs < LARGE_GRID_JOBS:
        return None
    seconds, gib = jobs * PLAN_SECONDS_PER_JOB, jobs * PLAN_MIB_PER_JOB / 1024
    return (f"this grid is {jobs - 3:,} run jobs ({len(grid_cells(config))} cells x {config['replicates']} "
            f"replicates x 3 steps); Snakemake plans them all before the first one runs: expect about "
            f"{seconds:.0f} s and {gib:.1f} GB for that (measured on 2 cores; benchmarks/RESULTS.md). Fewer "
            "replicates or cells plan proportionally faster")


def check_config(config: dict) -> None:
    """Raise ConfigError for what the schema cannot express: names that refer to other
    parts of the config. Assumes a schema-valid dict (sources, modes, knobs and names
    are the schema's to check)."""
    _check_cells(config)
    reference = config.get("reference_libconf")
    if reference is not None and reference not in config["library_configs"]:
        raise ConfigError("reference_libconf", f"unknown library configuration {reference!r}")
    training = config.get("training") or {}
    kwargs = training.get("kwargs") or {}
    if "factory" in training and "epochs" in training and "epochs" in kwargs and training["epochs"] != kwargs["epochs"]:
        raise ConfigError("training.epochs", f"{training['epochs']} and training.kwargs.epochs {kwargs['epochs']} "
                                             "disagree; a fit's epochs are its kwargs': write them once")
    epochs = planned_epochs(_resolve_training(training))
    where = "training.kwargs.epochs" if "epochs" in kwargs else "training.epochs"
    for name, knobs in config["library_configs"].items():
        interrupt = (knobs or {}).get("interrupt_after_epoch")
        if interrupt is not None and epochs is not None and interrupt >= epochs:
            raise ConfigError(f"library_configs.{name}.interrupt_after_epoch",
                              f"{interrupt} is not before the last epoch ({where} is {epochs}): "
                              "there would be nothing left to resume")


def planned_epochs(training: dict) -> int | None:
    """The epochs a run trains, from its resolved training section: the built-in loop's
    `epochs`; a fit's `kwargs.epochs` or `epochs` where its config writes one; else
    unknown (None: the fit decides)."""
    if "factory" not in training:
        return training["epochs"]
    value = training.get("kwargs", {}).get("epochs", training.get("epochs"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
    knobs = {**LIBRARY_DEFAULTS, **(config["library_configs"][libconf] or {})}
    for knob in ("interrupt_after_epoch", "cpu_capability"):
        if knobs[knob] is None:  # left out when off: older runs keep their config hash
            del knobs[knob]
    return knobs


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
        return {"factory": model["factory"], **{k: model.get(k, v) for k, v in MODEL_DEFAULTS["factory"].items()}}
    return _resolve_section(model, MODEL_DEFAULTS, "name")


def _resolve_training(training: dict) -> dict:
    if "factory" in training:  # the user's own loop: what the config writes, none of the built-in loop's defaults
        return {"factory": training["factory"], "kwargs": training.get("kwargs", {}),
                **{k: v for k, v in training.items() if k not in ("factory", "kwargs")}}
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
    if training.get("checkpoint_every", 1) != 1:
        resolved["checkpoint_every"] = training["checkpoint_every"]
    return resolved


def resolve_run_config(config: dict, setting: str, libconf: str, replicate: int) -> dict:
    """Everything that determines one grid run, with every default filled in.

    Its canonical JSON is what the config hash covers. Where the run is logged (tracking
    URI, experiment) is deliberately not part of it.
    """
    training = _resolve_training(config.get("training") or {})
    resolved = {
        "run_key": run_key(setting, libconf, replicate),
        "setting": setting,
        "libconf": libconf,
        "replicate": replicate,
        "root_seed": config["root_seed"],
        "seed_modes": seed_modes(config, setting),
        "library": library_knobs(config, libconf),
        "dataset": _resolve_dataset(config["dataset"]),
        "model": _resolve_model(config["model"]),
        "training": training,
    }
    if "factory" not in training:  # the built-in loop's augmentation; a fit augments as it likes
        resolved["augment"] = {**AUGMENT_DEFAULTS, **config.get("augment", {})}
    if config.get("evaluation"):
        resolved["evaluation"] = {"factory": config["evaluation"]["factory"]}
    return copy.deepcopy(resolved)


def uses_own_code(config: dict) -> bool:
    """Whether the config names the user's own model, data, loss or training loop (then
    a preflight check imports and calls them before any run is created)."""
    training = config.get("training", {})
    return (dataset_kind(config["dataset"]) in ("factory", "file") or "factory" in config["model"]
            or ":" in str(training.get("loss", "")) or "factory" in training or bool(config.get("evaluation")))


def reference_libconf(config: dict) -> str:
    """The library configuration others are measured against (cost of determinism,
    implementation effects): `reference_libconf`, else the first one."""
    return config.get("reference_libconf") or next(iter(config["library_configs"]))


def grid_record(config: dict) -> dict:
    """What the grid expects, recorded with the experiment so an audit can tell which
    runs are missing from MLflow alone."""
    return {"cells": [list(cell) for cell in grid_cells(config)], "replicates": config["replicates"]}
