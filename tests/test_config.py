import copy
import json

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import REPO, config_with, tiny_config
from reprogrid import config as cfg
from reprogrid.config import schema as config_schema
from reprogrid.config.tracking_uri import DEFAULT_TRACKING_URI, tracking_uri
from reprogrid.steps.preflight import check_inputs
from reprogrid.workflow import SCHEMA_FILE


def validated(config: dict) -> dict:
    """Schema then semantic checks, as the Snakefile does; ConfigError message on failure."""
    config = copy.deepcopy(config)
    try:
        validate(config, str(SCHEMA_FILE))
    except WorkflowError as error:
        raise cfg.ConfigError("?", cfg.schema_error_message(error.__context__)) from None
    cfg.check_config(config)
    check_inputs(config)
    return config


@pytest.mark.parametrize("path, value, key, words", [
    ("replicates", "three", "replicates", "not of type 'integer'"),
    ("replicates", 0, "replicates", "minimum"),
    ("root_seed", -1, "root_seed", "minimum"),
    ("seed_settings.init", {"inti": "vary"}, "seed_settings.init.inti", "unknown key"),
    ("seed_settings.init", {"init": "sometimes"}, "seed_settings.init.init", "is not one of"),
    ("seed_settings.init", {"ulp": "fixed"}, "seed_settings.init.ulp", "is not one of"),
    ("library_configs.t1", {"thread": 1}, "library_configs.t1.thread", "unknown key"),
    ("library_configs.t1", {"threads": "two"}, "library_configs.t1.threads", "not of type"),
    ("model.name", "resnet", "model.name", "is not one of"),
    ("training.epochs", -1, "training.epochs", "minimum"),
    ("dataset.test_fraction", 1.5, "dataset.test_fraction", "maximum"),
    ("seed_settings", {"../x": {}}, "seed_settings['../x']", "one path component"),
    ("library_configs", {"a/b": {}}, "library_configs['a/b']", "one path component"),
    ("seed_settings", {}, "seed_settings", "should be non-empty"),
    ("cells", 5, "cells", "expected all, or a list"),
    ("cells", [["all_fixed", "t9"]], "cells[0]", "unknown library configuration 't9'"),
    ("cells", [["nope", "t1"]], "cells[0]", "unknown seed setting 'nope'"),
    ("cells", [["all_fixed", "t1"], ["all_fixed", "t1"]], "cells[1]", "listed twice"),
    ("cells", [], "cells", "empty list"),
    ("surprise", 1, "surprise", "unknown key"),
    ("dataset", {"name": "digits", "path": "x.csv"}, "dataset", "exactly one of name"),
    ("dataset", {}, "dataset", "exactly one of name"),
    ("dataset", {"factory": "nocolon"}, "dataset.factory", "'package.module:function'"),
    ("model", {"name": "mlp", "factory": "a:b"}, "model", "exactly one of name"),
    ("training.loss", "hinge", "training.loss", "cross_entropy, mse, or your own"),
    ("training.lr_schedule", "linear", "training.lr_schedule", "is not one of"),
    ("training.optimizer", "lbfgs", "training.optimizer", "is not one of"),
])
def test_bad_configs_name_the_key(path, value, key, words):
    with pytest.raises(cfg.ConfigError) as raised:
        validated(config_with(path, value))
    message = str(raised.value)
    assert f"config key {key}:" in message
    assert words in message


def test_the_default_config_and_the_tiny_one_are_valid():
    validated(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    validated(tiny_config())


EXAMPLES = sorted((REPO / "config" / "examples").glob("*.yaml")) + sorted((REPO / "examples").glob("*/*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(REPO)) for p in EXAMPLES])
def test_every_shipped_example_config_passes_the_schema_and_the_checks(path):
    config = yaml.safe_load(path.read_text())
    cfg.check_finite(config)
    validate(config, str(SCHEMA_FILE))
    cfg.check_config(config)  # (data files and devices are checked where the example runs)
    assert cfg.run_keys(config)


def described(node: dict, path: str = "") -> list[str]:
    """Schema properties without a description, as dotted paths."""
    missing = []
    for name, child in node.get("properties", {}).items():
        if "description" not in child:
            missing.append(f"{path}{name}")
        missing += described(child, f"{path}{name}.")
    if isinstance(node.get("additionalProperties"), dict):
        missing += described(node["additionalProperties"], f"{path}*.")
    return missing


def test_the_schema_describes_every_key_every_source_and_every_mode():
    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    assert described(schema) == []
    for source in cfg.SOURCES:  # the tool's central concept, explained where it is defined
        settings = schema["properties"]["seed_settings"]["additionalProperties"]["properties"]
        modes = config_schema.with_ref_followed(schema, settings[source])
        assert set(modes["x-meanings"]) == set(cfg.SOURCE_MODES[source]), source


def test_the_defaults_read_from_the_schema_are_those_config_readme_documents():
    assert cfg.OPTIMIZER_DEFAULTS["sgd"] == {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0}
    assert cfg.DEFAULT_MODES == {**{s: "fixed" for s in cfg.SOURCES}, "ulp": "off"}
    assert (cfg.LIBRARY_DEFAULTS["threads"], cfg.LIBRARY_DEFAULTS["seed_numpy_global"]) == (1, True)
    assert DEFAULT_TRACKING_URI == "sqlite:///results/mlflow.db"


def test_training_keys_at_their_defaults_leave_the_config_hash_alone():
    plain = cfg.resolve_run_config(tiny_config(), "init", "t1", 1)
    config = config_with("training.loss", "auto")
    config["training"]["lr_schedule"] = "none"
    assert cfg.resolve_run_config(config, "init", "t1", 1) == plain
    config["training"] |= {"lr_schedule": "step", "gamma": 0.5}
    training = cfg.resolve_run_config(config, "init", "t1", 1)["training"]
    assert (training["lr_schedule"], training["step_size"], training["gamma"]) == ("step", 10, 0.5)


def test_resolved_run_config_fills_defaults_and_drops_what_does_not_apply():
    config = tiny_config(model={"name": "cnn", "hidden": [9], "dropout": 0.1})
    run = cfg.resolve_run_config(config, "init", "t1", 2)
    assert run["run_key"] == "init/t1/r2"
    assert run["model"] == {"name": "cnn", "channels": [16, 32], "dropout": 0.1}
    assert run["seed_modes"]["init"] == "vary" and run["seed_modes"]["ulp"] == "off"
    # knobs that are off are left out: runs recorded before they existed keep their config hash
    assert run["library"] == {k: v for k, v in cfg.LIBRARY_DEFAULTS.items()
                              if k not in ("interrupt_after_epoch", "cpu_capability")} | {"threads": 1}
    adam = cfg.resolve_run_config(tiny_config(training={"optimizer": "adam"}), "init", "t1", 1)
    assert adam["training"] == {"epochs": 15, "batch_size": 32, "optimizer": "adam", "lr": 0.001, "weight_decay": 0.0}


def test_cells_all_is_every_setting_with_every_libconf():
    assert cfg.grid_cells(tiny_config()) == [
        ("all_fixed", "t1"), ("all_fixed", "numpy_unseeded"), ("init", "t1"), ("init", "numpy_unseeded"),
    ]
    assert cfg.run_keys(tiny_config(cells=[["init", "t1"]])) == ["init/t1/r1", "init/t1/r2"]


def test_tracking_uri_environment_variable_wins(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri({}) == "sqlite:///results/mlflow.db"
    assert tracking_uri({"tracking_uri": "sqlite:///x.db"}) == "sqlite:///x.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri({"tracking_uri": "sqlite:///x.db"}) == "http://127.0.0.1:5000"


def test_a_very_large_grid_is_announced_with_what_planning_it_costs():
    assert cfg.scale_warning(tiny_config()) is None
    warning = cfg.scale_warning(tiny_config(replicates=10_000))  # 4 cells: 120,000 run jobs
    assert warning.startswith("this grid is 120,000 run jobs (4 cells x 10000 replicates x 3 steps)")
    # the estimate is the committed dry run's cost per job (benchmarks/results/scale.json)
    dry_run = json.loads((REPO / "benchmarks" / "results" / "scale.json").read_text())["dry_run"]
    jobs = 120_003
    per_job = {key: value / dry_run["jobs"] for key, value in dry_run["workflow"].items()}
    seconds, gib = jobs * per_job["seconds"], jobs * per_job["peak_mib"] / 1024
    assert f"expect about {seconds:.0f} s and {gib:.1f} GB" in warning
