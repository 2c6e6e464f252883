"""`reprogrid init`: the files a project of your own gets, the refusal to overwrite them,
and the one line a Snakefile without its config says."""

import os
import subprocess

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO, SNAKEMAKE
from reprogrid import config as cfg
from reprogrid.cli import main
from reprogrid.workflow import SCHEMA_FILE
from reprogrid.workflow.reprogrid_init import InitError, init

FILES = ["Snakefile", "config/config.yaml", "profiles/default/config.yaml"]


def validate_schema(config: dict) -> None:
    validate(config, str(SCHEMA_FILE))


def test_init_writes_a_snakefile_using_the_workflow_as_a_module_and_a_config_that_validates(tmp_path):
    assert main(["init", str(tmp_path / "my-project")]) == 0
    project = tmp_path / "my-project"
    snakefile = (project / "Snakefile").read_text()
    assert "module reprogrid:" in snakefile and "use rule * from reprogrid" in snakefile
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    assert config["experiment"] == "my-project"
    validate_schema(config)
    cfg.check_config(config)
    assert len(cfg.run_keys(config)) == 8  # the count its header comment gives


def test_the_clones_snakefile_is_the_one_init_writes(tmp_path):
    """The clone runs the very workflow a project of its own does, through the same module."""
    init(tmp_path)
    assert (REPO / "Snakefile").read_text() == (tmp_path / "Snakefile").read_text()
    profile = "profiles/default/config.yaml"
    assert yaml.safe_load((REPO / profile).read_text()) == yaml.safe_load((tmp_path / profile).read_text())


def test_init_names_your_factories_in_the_config(tmp_path):
    init(tmp_path, data="mypkg.data:spirals", model="mypkg.models:build", fit="looppkg.train:fit")
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    assert config["dataset"] == {"factory": "mypkg.data:spirals", "kwargs": {}}
    assert config["model"] == {"factory": "mypkg.models:build", "kwargs": {}}
    assert config["training"] == {"factory": "looppkg.train:fit", "kwargs": {}}
    validate_schema(config)
    cfg.check_config(config)


def test_init_refuses_a_factory_that_is_not_module_colon_function(tmp_path):
    with pytest.raises(InitError, match=r"--model 'mypkg.models': expected package.module:function"):
        init(tmp_path, model="mypkg.models")
    assert list(tmp_path.iterdir()) == []


def test_init_twice_refuses_naming_the_files_and_changes_nothing(tmp_path, capsys):
    assert main(["init", str(tmp_path)]) == 0
    (tmp_path / "config" / "config.yaml").write_text("experiment: edited\n")
    before = {name: (tmp_path / name).read_bytes() for name in FILES}
    capsys.readouterr()
    assert main(["init", str(tmp_path)]) == 2
    said = capsys.readouterr().err.strip()
    assert said == f"reprogrid init: {tmp_path} already has Snakefile, config/config.yaml, " \
                   "profiles/default/config.yaml: nothing written (--force overwrites)"
    assert {name: (tmp_path / name).read_bytes() for name in FILES} == before
    assert main(["init", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "config" / "config.yaml").read_bytes() != before["config/config.yaml"]


def test_the_written_snakefile_is_formatted_as_snakefmt_wants(tmp_path):
    init(tmp_path)
    done = subprocess.run([str(SNAKEMAKE.with_name("snakefmt")), "--check", "Snakefile"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("how", ["init", "clone"])
def test_snakemake_without_a_config_says_to_run_init_in_one_line(tmp_path, how):
    if how == "init":
        init(tmp_path)
        (tmp_path / "config" / "config.yaml").unlink()
        command = [str(SNAKEMAKE), "-n"]
    else:
        command = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"reprogrid: no config/config.yaml in {tmp_path}: run `reprogrid init` here to write a starting grid, "
        "or name a config with --configfile FILE"), done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "results").exists()
