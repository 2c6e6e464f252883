"""A `training.command` run's config: what applies to it, its sources and their seeds.

A command run trains by running the user's script as it is, so the built-in loop's
keys, `dataset`, `model` and the library knobs that only reprogrid's own loaders read
do not reach it: each is refused with one line naming the key. Its sources are the
script's `{seed}` and the global generators reprogrid seeds before the script's first
line (`script`, `torch`, `numpy`, `python`, `hash`); `plain` (the default) is what a
plain interpreter does, a seed from OS entropy, drawn by reprogrid so that the run is
recorded and replays (on torch 2.13 even torch's default generator starts from entropy).
"""

from __future__ import annotations

import string

from reprogrid.config.schema import COMMAND_DEFAULT_MODE, COMMAND_SOURCES, DEFAULT_MODES, LIBRARY_DEFAULTS, SOURCES, ConfigError

PLACEHOLDERS = ("seed", "outdir", "replicate")
TRAINING_KEYS = ("command", "args", "outputs", "timeout_s")
NOT_FOR_COMMANDS = ("dataset", "model", "augment")
# read only by reprogrid's own loaders and seeding: a script builds and seeds its own
REFUSED_KNOBS = ("num_workers", "seed_workers", "seed_python_random", "seed_numpy_global")


def is_command_run(config: dict) -> bool:
    return "command" in (config.get("training") or {})


def placeholders(command: str) -> list[str]:
    try:
        return [field for _, field, _, _ in string.Formatter().parse(command) if field is not None]
    except ValueError as error:
        raise ConfigError("training.command", f"{error} (write {{{{ and }}}} for literal braces)") from None


def check_command_run(config: dict) -> None:
    """What a command run refuses; assumes a schema-valid config with training.command."""
    training = config["training"]
    for key in sorted(set(training) - set(TRAINING_KEYS)):
        raise ConfigError(f"training.{key}", "does not apply to a training.command run (the script trains as it "
                                             f"is; it takes {', '.join(TRAINING_KEYS)})")
    for key in NOT_FOR_COMMANDS:
        if key in config:
            raise ConfigError(key, "does not apply to a training.command run: the script builds its own")
    args = training.get("args") or {}
    for name in args:
        if name in PLACEHOLDERS:
            raise ConfigError(f"training.args.{name}", f"{{{name}}} is reprogrid's to fill; name the argument otherwise")
    used = placeholders(training["command"])
    for field in used:
        if field not in (*PLACEHOLDERS, *args):
            raise ConfigError("training.command", f"unknown placeholder {{{field}}}: the command takes "
                                                  f"{', '.join('{' + p + '}' for p in (*PLACEHOLDERS, *args))} "
                                                  "(your own through training.args)")
    for name in args:
        if name not in used:
            raise ConfigError(f"training.args.{name}", f"the command has no placeholder {{{name}}}")
    for setting, modes in config["seed_settings"].items():
        for source, mode in (modes or {}).items():
            if source in SOURCES and mode != DEFAULT_MODES[source]:  # Snakemake fills the defaults in
                raise ConfigError(f"seed_settings.{setting}.{source}",
                                  f"is a source of reprogrid's own training; a training.command run's are "
                                  f"{', '.join(COMMAND_SOURCES)}")
    for name, knobs in config["library_configs"].items():
        for knob in REFUSED_KNOBS:
            if knob in (knobs or {}) and knobs[knob] != LIBRARY_DEFAULTS[knob]:
                raise ConfigError(f"library_configs.{name}.{knob}", "cannot reach a training.command run: "
                                                                   "the script builds its loaders and seeds itself")


def check_builtin_run(config: dict) -> None:
    """What a run of reprogrid's own training (or a fit) needs that a command run does not."""
    for key in ("dataset", "model"):
        if key not in config:
            raise ConfigError(key, "is required (only a training.command run goes without)")
    for key in ("args", "outputs", "timeout_s"):
        if key in (config.get("training") or {}):
            raise ConfigError(f"training.{key}", "applies to a training.command run only")
    for setting, modes in config["seed_settings"].items():
        for source in COMMAND_SOURCES:
            if source in (modes or {}):
                raise ConfigError(f"seed_settings.{setting}.{source}",
                                  "is a source of a training.command run; this grid trains with "
                                  f"{'its fit' if 'factory' in (config.get('training') or {}) else 'the built-in loop'}")


def command_modes(config: dict, setting: str) -> dict[str, str]:
    """Every command source's mode for a setting (their seeds: reprogrid.config.seeds.derive_seeds)."""
    modes = config["seed_settings"][setting] or {}
    return {source: modes.get(source, COMMAND_DEFAULT_MODE) for source in COMMAND_SOURCES}


