"""The `variants` axis: named changes of the training (model, dataset, training, augment),
each applied on top of the config, so that a grid asks "is this change better, or seed
noise?". A variant's section is merged into the config's key by key (dictionaries merge,
other values replace), so `{training: {lr: 0.1}}` changes the learning rate and leaves
the rest. Seeds do not depend on the variant: replicate r of a setting draws the same
seed of every source under every variant (reprogrid.config.seeds), so variants are
compared run for run (paired)."""

from __future__ import annotations

import copy

SECTIONS = ("model", "dataset", "training", "augment")


def variant_names(config: dict) -> list[str | None]:
    """The grid's variants in config order; [None] for a grid without the axis."""
    return list(config.get("variants") or {}) or [None]


def merged(base: dict, change: dict) -> dict:
    """`base` with `change` written over it: dictionaries merge, other values replace."""
    out = copy.deepcopy(base)
    for key, value in change.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


def with_variant(config: dict, variant: str | None) -> dict:
    """The config one variant's runs train by (the config itself without a variant)."""
    if variant is None:
        return config
    change = config["variants"][variant] or {}
    return merged(config, {section: change[section] for section in SECTIONS if section in change})
