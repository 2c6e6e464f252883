"""A training.command run's config: what it takes, what it refuses (one line naming the
key), and its sources' seeds."""

import copy

import pytest
from snakemake.utils import validate

from conftest import tiny_config
from reprogrid import config as cfg
from reprogrid.config.command import command_modes
from reprogrid.config.seeds import derive_seeds
from reprogrid.workflow import SCHEMA_FILE


def command_config(**overrides) -> dict:
    config = {
        "experiment": "scripts", "root_seed": 3, "replicates": 2,
        "training": {"command": "python train.py --seed {seed} --out {outdir}", "outputs": {"metrics": "metrics.json"},
                     "timeout_s": 600},
        "seed_settings": {"plain": {}, "fixed": {"script": "fixed"}, "fixed_np": {"script": "fixed", "numpy": "fixed"}},
        "library_configs": {"t1": {"threads": 1}, "t2": {"threads": 2}},
    }
    config.update(overrides)
    return config


def checked(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA_FILE))  # as the Snakefile does: defaults filled in
    cfg.check_config(config)
    return config


def test_a_command_grid_validates_and_its_settings_default_to_plain():
    config = checked(command_config())
    assert command_modes(config, "plain") == dict.fromkeys(("script", "torch", "numpy", "python", "hash"), "plain")
    assert command_modes(config, "fixed_np") == {"script": "fixed", "torch": "plain", "numpy": "fixed",
                                                 "python": "plain", "hash": "plain"}


@pytest.mark.parametrize("change, key, said", [
    ({"training": {"command": "python t.py", "epochs": 3}}, "training.epochs", "does not apply to a training.command run"),
    ({"dataset": {"name": "digits"}}, "dataset", "does not apply to a training.command run"),
    ({"training": {"command": "python t.py --lr {lr}"}}, "training.command", "unknown placeholder {lr}"),
    ({"training": {"command": "python t.py", "args": {"lr": 0.1}}}, "training.args.lr", "no placeholder {lr}"),
    ({"training": {"command": "python t.py --s {seed}", "args": {"seed": 1}}}, "training.args.seed",
     "reprogrid's to fill"),
    ({"training": {"command": "python t.py --json {"}}, "training.command", "literal braces"),
    ({"seed_settings": {"s": {"init": "vary"}}}, "seed_settings.s.init", "a training.command run's are script"),
    ({"library_configs": {"w": {"num_workers": 2}}}, "library_configs.w.num_workers", "cannot reach"),
])
def test_what_a_command_run_refuses_is_named_in_one_line(change, key, said):
    with pytest.raises(cfg.ConfigError) as refused:
        checked(command_config(**change))
    assert refused.value.key == key and said in str(refused.value)


@pytest.mark.parametrize("change, key", [
    ({"seed_settings": {"s": {"script": "fixed"}}}, "seed_settings.s.script"),
    ({"training": {"epochs": 2, "timeout_s": 5}}, "training.timeout_s"),
])
def test_a_built_in_run_refuses_what_only_commands_take(change, key):
    with pytest.raises(cfg.ConfigError) as refused:
        checked(tiny_config(**change))
    assert refused.value.key == key


def test_a_built_in_run_still_needs_its_dataset():
    config = tiny_config()
    del config["dataset"]
    with pytest.raises(cfg.ConfigError, match=r"^config key dataset: is required \(only a training.command run"):
        checked(config)


def test_command_seeds_fixed_repeat_vary_differ_plain_wait_for_the_run_and_sources_are_independent():
    modes = {"script": "fixed", "torch": "vary", "numpy": "plain", "python": "unseeded", "hash": "fixed"}
    r1, r2 = derive_seeds(3, modes, 1), derive_seeds(3, modes, 2)
    assert r1["script"] == r2["script"] and r1["torch"]["seed"] != r2["torch"]["seed"]
    assert r1["numpy"] == {"mode": "plain", "seed": None} and r1["python"] == {"mode": "unseeded", "seed": None}
    assert r1["script"]["seed"] != r1["hash"]["seed"]  # one stream per source
    assert derive_seeds(3, modes | {"numpy": "fixed"}, 1)["torch"] == r1["torch"]  # changing one moves no other
