"""One grid run's complete config, resolved from the experiment config with every default
filled in and every key that does not apply dropped; the grid's cells and run keys.
Pure: no files read, nothing heavy imported, so `snakemake -n` stays cheap. What the tool
predicts from a run config is reprogrid.training.prediction; where runs are recorded,
reprogrid.config.tracking_uri; the data file and the device, reprogrid.steps.preflight."""

from __future__ import annotations

import copy
from typing import Any

from reprogrid.config.command import command_modes, is_command_run
from reprogrid.config.schema import (
    AUGMENT_DEFAULTS,
    CHECKPOINT_INTERVAL_S,
    DATASET_DEFAULTS,
    DEFAULT_MODES,
    LIBRARY_DEFAULTS,
    MODEL_DEFAULTS,
    OPTIMIZER_DEFAULTS,
    SCHEDULE_DEFAULTS,
    TRAINING_DEFAULTS,
)
from reprogrid.config.variants import variant_names, with_variant


def planned_epochs(training: dict) -> int | None:
    """The epochs a run trains, from its resolved training section: the built-in loop's
    `epochs`; a fit's `kwargs.epochs` or `epochs` where its config writes one; else
    unknown (None: the fit decides)."""
    if "factory" not in training:
        return training["epochs"]
    value = training.get("kwargs", {}).get("epochs", training.get("epochs"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def grid_cells(config: dict) -> list[tuple[str, str]]:
    """The (setting, libconf) cells of the grid, in config order."""
    cells = config.get("cells", "all")
    if cells == "all":
        return [(s, lc) for s in config["seed_settings"] for lc in config["library_configs"]]
    return [(s, lc) for s, lc in cells]


def run_key(setting: str, libconf: str, replicate: int, variant: str | None = None) -> str:
    """`setting/libconf/rN`, or `setting/libconf/variant/rN` in a grid with variants."""
    return f"{setting}/{libconf}/{variant}/r{replicate}" if variant else f"{setting}/{libconf}/r{replicate}"


def run_keys(config: dict) -> list[str]:
    return [
        run_key(s, lc, r, v)
        for s, lc in grid_cells(config)
        for v in variant_names(config)
        for r in range(1, config["replicates"] + 1)
    ]


def seed_modes(config: dict, setting: str) -> dict[str, str]:
    """Every source's mode for a setting; unnamed sources take their default."""
    if is_command_run(config):
        return command_modes(config, setting)
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
    if training.get("checkpoint_interval_s", CHECKPOINT_INTERVAL_S) != CHECKPOINT_INTERVAL_S:
        resolved["checkpoint_interval_s"] = training["checkpoint_interval_s"]
    return resolved


def resolve_run_config(config: dict, setting: str, libconf: str, replicate: int, variant: str | None = None) -> dict:
    """Everything that determines one grid run, with every default filled in.

    Its canonical JSON is what the config hash covers. Where the run is logged (tracking
    URI, experiment) is deliberately not part of it. A run of a variant has `variant`
    and the variant's changes applied; a grid without variants has neither.
    """
    config = with_variant(config, variant)
    named = {"run_key": run_key(setting, libconf, replicate, variant), "setting": setting, "libconf": libconf,
             **({"variant": variant} if variant else {}), "replicate": replicate}
    if is_command_run(config):  # the script is its own data, model and loop
        return copy.deepcopy({**named, "root_seed": config["root_seed"],
                              "seed_modes": seed_modes(config, setting), "library": library_knobs(config, libconf),
                              "training": {"outputs": {}, **config["training"]}})
    training = _resolve_training(config.get("training") or {})
    resolved = {
        **named,
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
    if is_command_run(config):  # the command itself is the user's code; it runs only as a job
        return False
    return (dataset_kind(config["dataset"]) in ("factory", "file") or "factory" in config["model"]
            or ":" in str(training.get("loss", "")) or "factory" in training or bool(config.get("evaluation")))


def reference_libconf(config: dict) -> str:
    """The library configuration others are measured against (cost of determinism,
    implementation effects): `reference_libconf`, else the first one."""
    return config.get("reference_libconf") or next(iter(config["library_configs"]))


def grid_record(config: dict) -> dict:
    """What the grid expects, recorded with the experiment so an audit can tell which
    runs are missing from MLflow alone."""
    record = {"cells": [list(cell) for cell in grid_cells(config)], "replicates": config["replicates"]}
    if config.get("variants"):
        record["variants"] = list(config["variants"])
    return record
