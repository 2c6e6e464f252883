"""Checks of a config beyond its schema: before it (what YAML and JSON Schema let through)
and after it (names that refer to other parts of the config, and what a grid will cost).

Before the schema:
- a key written twice in one mapping: YAML keeps the last silently; refused, naming the
  key and both lines;
- a config that expands to more values than any grid needs (YAML aliases nest: a few
  hundred bytes can stand for billions of values, and validating them takes minutes);
- NaN or infinity (a schema's bounds let NaN through);
- a number with a decimal point where the schema wants an integer (`epochs: 3.0`, as
  `yaml.safe_dump` of a float writes it): JSON Schema counts 3.0 as an integer, but the
  run config would differ from `epochs: 3` and Snakemake would rerun, and delete, every
  finished run before the first one failed.
Each is refused by key, before anything runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from reprogrid.config.command import check_builtin_run, check_command_run, is_command_run
from reprogrid.config.resolve import _resolve_training, grid_cells, planned_epochs
from reprogrid.config.schema import SCHEMA, ConfigError, key_path, with_ref_followed
from reprogrid.config.variants import with_variant

MAX_VALUES = 200_000  # far more than a config of thousands of cells holds


class _StrictLoader(yaml.SafeLoader):
    """LibYAML-free SafeLoader that refuses a key written twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(str(key), f"written twice in one mapping of {Path(self.name).name} (lines "
                                            f"{seen[key] + 1} and {key_node.start_mark.line + 1}); YAML would keep "
                                            "the last silently: delete one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def check_files(paths) -> None:
    """Refuse a config file with a key written twice in one mapping."""
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            loader = _StrictLoader(handle)
            loader.name = str(path)
            try:
                loader.get_single_data()
            finally:
                loader.dispose()


def check_size(config, limit: int = MAX_VALUES) -> None:
    """Refuse a config that expands (through YAML aliases) to more than `limit` values."""
    pending, count = [config], 0
    while pending:
        node = pending.pop()
        count += 1
        if count > limit:
            raise ConfigError("(top level)", f"the config expands to more than {limit:,} values (YAML aliases that "
                                              "nest?); no grid needs that many: write it out plainly")
        if isinstance(node, dict):
            pending += node.values()
        elif isinstance(node, list):
            pending += node


def check_integers(node, schema: dict = SCHEMA, path: tuple = ()) -> None:
    """Refuse a float where the schema wants an integer, naming its key."""
    schema = with_ref_followed(SCHEMA, schema)
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(node, float) and "integer" in types and "number" not in types:
        whole = f"; write {int(node)}" if node.is_integer() else ""
        raise ConfigError(key_path(path), f"{node!r} is not an integer{whole}")
    if isinstance(node, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, value in node.items():
            child = properties.get(key, extra if isinstance(extra, dict) else None)
            if child is not None:
                check_integers(value, child, (*path, key))
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        for index, value in enumerate(node):
            check_integers(value, schema["items"], (*path, index))


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


# What planning a grid costs Snakemake per job: benchmarks/results/scale.json's dry run
# (benchmarks/scale.py) divided by its jobs; tests/test_benchmarks.py holds them equal.
PLAN_SECONDS_PER_JOB, PLAN_MIB_PER_JOB = 61.15 / 30_003, 717.7 / 30_003
LARGE_GRID_JOBS = 15_000


def scale_warning(config: dict) -> str | None:
    """For a very large grid, what planning it will cost before the first job runs."""
    variants = len(config.get("variants") or {}) or 1
    jobs = 3 * len(grid_cells(config)) * variants * config["replicates"] + 3
    if jobs < LARGE_GRID_JOBS:
        return None
    seconds, gib = jobs * PLAN_SECONDS_PER_JOB, jobs * PLAN_MIB_PER_JOB / 1024
    times_variants = f" x {variants} variants" if variants > 1 else ""
    return (f"this grid is {jobs - 3:,} run jobs ({len(grid_cells(config))} cells{times_variants} x "
            f"{config['replicates']} replicates x 3 steps); Snakemake plans them all before the first one runs: expect about "
            f"{seconds:.0f} s and {gib:.1f} GB for that (measured on 2 cores; benchmarks/RESULTS.md). Fewer "
            "replicates or cells plan proportionally faster")


def check_config(config: dict, variants: bool = True) -> None:
    """Raise ConfigError for what the schema cannot express: names that refer to other
    parts of the config. Assumes a schema-valid dict (sources, modes, knobs and names
    are the schema's to check). `variants`: each variant's config too."""
    (check_command_run if is_command_run(config) else check_builtin_run)(config)
    if variants:
        check_variants(config)
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


def check_variants(config: dict) -> None:
    """Each variant's config passes the same checks as the config (the schema's were made
    by the caller on with_variant's output); a command run's variant changes its training only."""
    for name, change in (config.get("variants") or {}).items():
        for section in (change or {}):
            if is_command_run(config) and section != "training":
                raise ConfigError(f"variants.{name}.{section}", "does not apply to a training.command run: "
                                                                "the script builds its own")
        try:
            check_config(with_variant(config, name), variants=False)
        except ConfigError as error:
            raise ConfigError(f"variants.{name}", f"its config is not valid: {error}") from None


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
