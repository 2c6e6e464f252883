"""How the config reaches the workflow from the command line (dry runs: fast)."""

import re
import shutil

import pytest
import yaml

from conftest import REPO, run_snakemake, tiny_config


@pytest.fixture
def clone(tmp_path):
    """A workdir holding the default config/config.yaml, as a fresh clone does."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path


def planned_train_jobs(result) -> int:
    match = re.search(r"^train\s+(\d+)$", result.stdout, re.MULTILINE)
    assert match, result.stdout + result.stderr
    return int(match.group(1))


def test_the_default_config_plans_the_demo_grid(clone):
    default = yaml.safe_load((clone / "config" / "config.yaml").read_text())
    cells = len(default["seed_settings"]) * len(default["library_configs"])
    assert planned_train_jobs(run_snakemake(clone, "-n", "--cores", "2")) == cells * default["replicates"]


def test_a_configfile_on_the_command_line_replaces_the_default_grid(clone):
    tiny = tiny_config(seed_settings={"only": {}}, library_configs={"one": {}}, replicates=2)
    result = run_snakemake(clone, "-n", "--cores", "2", config=tiny)
    assert planned_train_jobs(result) == 2
    assert "results/runs/only/one/r1/model.pt" in result.stdout
    assert "all_fixed" not in result.stdout  # the default's settings did not join


def test_config_overrides_still_apply_to_the_default(clone):
    result = run_snakemake(clone, "-n", "--cores", "2", "--config", "replicates=1")
    assert planned_train_jobs(result) == 9


def test_a_bad_config_stops_before_any_work_and_names_the_key(clone):
    bad = tiny_config(library_configs={"t1": {"threads": 1, "seed_numpy": False}})
    result = run_snakemake(clone, "--cores", "2", config=bad)
    assert result.returncode != 0
    assert "config key library_configs.t1.seed_numpy: unknown key" in result.stderr
    assert not (clone / "results").exists()
