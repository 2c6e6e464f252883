"""reprogrid as a user installs it: the wheel `pip wheel --no-deps .` builds, installed (not
editable) with constraints.txt into a fresh virtual environment, runs a grid in a project
of its own outside the clone: `reprogrid init`, `snakemake --cores 2`, `reprogrid audit`,
one run rerun with `--forcerun train`; and the same with the project's own model package."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import REPO, fresh_database_connections

pytestmark = pytest.mark.workflow


def run(command: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """A command as the user types it: nothing of the clone or the tests' environment on
    the path, so only the installed wheel can answer."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "VIRTUAL_ENV")}
    environment["PATH"] = f"{command[0].parent}:/usr/local/bin:/usr/bin:/bin"
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=timeout)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory):
    """A fresh virtual environment holding the wheel built from a copy of the sources the
    build needs (so the build writes nothing into the clone)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "reprogrid", source / "reprogrid", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(root / "dist"), "."],
                   cwd=source, check=True, timeout=600)
    [wheel] = (root / "dist").glob("reprogrid-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    bin_dir = root / "venv" / "bin"
    subprocess.run([bin_dir / "pip", "install", "--quiet", "-c", REPO / "constraints.txt", wheel], check=True,
                   timeout=800)
    return bin_dir


def project_runs(project: Path, experiment: str) -> list:
    fresh_database_connections()
    client = MlflowClient(f"sqlite:///{project}/results/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], "tags.`reprogrid.kind` = 'run'", max_results=100)


def run_a_grid_from_init(venv_bin: Path, project: Path, *init_options: str) -> list:
    """init, snakemake, audit in `project`, as the README's "In your own project" says;
    the grid's runs as MLflow reads them back."""
    run([venv_bin / "reprogrid", "init", *init_options], cwd=project)
    installed = run([venv_bin / "python", "-c", "import reprogrid; print(reprogrid.__file__)"], cwd=project)
    assert Path(installed.stdout.strip()).is_relative_to(venv_bin.parent)  # the wheel, not the clone
    grid = run([venv_bin / "snakemake", "--cores", "2"], cwd=project)
    assert "  audit: OK" in grid.stdout.splitlines(), grid.stdout
    audit = run([venv_bin / "reprogrid", "audit"], cwd=project)
    assert audit.stdout.strip().endswith(": OK"), audit.stdout
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    runs = project_runs(project, config["experiment"])
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
    for one in runs:
        assert (project / "results" / "runs" / one.data.tags["reprogrid.run_key"] / "eval.json").is_file()
    version = run([venv_bin / "reprogrid", "--version"], cwd=project).stdout.split()
    assert version[0] == "reprogrid" and {r.data.tags["reprogrid.version"] for r in runs} == {version[1]}
    return runs


def test_an_installed_wheel_runs_a_grid_in_a_project_of_its_own_and_reruns_one_run(venv_bin, tmp_path):
    project = tmp_path / "my-project"
    project.mkdir()
    runs = run_a_grid_from_init(venv_bin, project)
    assert {r.data.tags["mlflow.source.name"] for r in runs} == {"reprogrid built-in loop"}

    key = "init/t1/r2"
    outputs = sorted((project / "results" / "runs").rglob("eval.json"))
    before = {path: path.stat().st_mtime_ns for path in outputs}
    rerun = run([venv_bin / "snakemake", "--cores", "2", "--forcerun", "train", f"results/runs/{key}/eval.json"],
                cwd=project)
    assert re.search(r"train\s+1\n", rerun.stderr) and re.search(r"evaluate\s+1\n", rerun.stderr), rerun.stderr
    changed = [path for path in outputs if path.stat().st_mtime_ns != before[path]]
    assert changed == [project / "results" / "runs" / key / "eval.json"]
    again = [r for r in project_runs(project, "my-project") if r.data.tags["reprogrid.run_key"] == key]
    assert len(again) == 2 and len({r.data.tags["reprogrid.hash.weights"] for r in again}) == 1


def test_an_installed_wheel_audits_the_projects_own_model_package(venv_bin, tmp_path):
    project = tmp_path / "spirals"
    shutil.copytree(REPO / "examples" / "own_model" / "mypkg", project / "mypkg",
                    ignore=shutil.ignore_patterns("__pycache__"))
    runs = run_a_grid_from_init(venv_bin, project, "--model", "mypkg.models:build", "--data", "mypkg.data:spirals")
    assert {r.data.params["model.factory"] for r in runs} == {"mypkg.models:build"}
