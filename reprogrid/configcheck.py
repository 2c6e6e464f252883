"""Checks of a config that come before its schema: what YAML and JSON Schema let through
and would otherwise reach a run.

- A key written twice in one mapping: YAML keeps the last silently; refused, naming the
  key and both lines.
- A config that expands to more values than any grid needs (YAML aliases nest: a few
  hundred bytes can stand for billions of values, and validating them takes minutes):
  refused at once.
- A number with a decimal point where the schema wants an integer (`epochs: 3.0`, as
  `yaml.safe_dump` of a float writes it): JSON Schema counts 3.0 as an integer, but the
  run config would differ from `epochs: 3` and Snakemake would rerun, and delete, every
  finished run before the first one failed. Refused, naming the key, before anything.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from reprogrid.config import SCHEMA, ConfigError, key_path

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


def _resolved(node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = SCHEMA
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def check_integers(node, schema: dict = SCHEMA, path: tuple = ()) -> None:
    """Refuse a float where the schema wants an integer, naming its key."""
    schema = _resolved(schema)
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
