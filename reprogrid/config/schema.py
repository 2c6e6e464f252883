"""The config's vocabulary and defaults, read from its JSON Schema (the one place they are
written down: reprogrid/workflow/schemas/config.schema.yaml), and ConfigError, the one way a config
problem is said: `config key <key>: <problem>`. Pure: nothing heavy imported."""

from __future__ import annotations

import re
from typing import Any

import yaml

from reprogrid.workflow import SCHEMA_FILE as SCHEMA_PATH  # the schema ships with the workflow


def _schema() -> dict:
    if not SCHEMA_PATH.is_file():  # a build that left the package data behind
        raise RuntimeError(f"reprogrid's config schema is not at {SCHEMA_PATH}: reinstall reprogrid")
    with open(SCHEMA_PATH, encoding="utf-8") as handle:  # LibYAML's loader where present: 20x faster
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def with_ref_followed(schema: dict, node: dict) -> dict:
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
_SOURCE_SCHEMAS = {name: with_ref_followed(SCHEMA, node) for name, node in
                   _PROPERTIES["seed_settings"]["additionalProperties"]["properties"].items()}
# the built-in runs' sources; a training.command run has its own (x-command)
SOURCES = tuple(name for name, node in _SOURCE_SCHEMAS.items() if not node.get("x-command"))
SOURCE_MODES = {source: tuple(node["enum"]) for source, node in _SOURCE_SCHEMAS.items() if source in SOURCES}
DEFAULT_MODES = {source: node["default"] for source, node in _SOURCE_SCHEMAS.items() if source in SOURCES}
COMMAND_SOURCES = tuple(name for name, node in _SOURCE_SCHEMAS.items() if node.get("x-command"))
COMMAND_MODES = {source: tuple(_SOURCE_SCHEMAS[source]["enum"]) for source in COMMAND_SOURCES}
COMMAND_DEFAULT_MODE = "plain"
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
CHECKPOINT_INTERVAL_S = _TRAINING["checkpoint_interval_s"]["x-default"]
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


