"""`reprogrid --version` says which reprogrid recorded a grid, as every run's tag does."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import reprogrid
from conftest import grid_runs


def test_the_version_printed_is_the_installed_package_and_the_module():
    command = Path(sys.executable).with_name("reprogrid")
    printed = subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert printed == f"reprogrid {importlib.metadata.version('reprogrid')}"
    assert printed == f"reprogrid {reprogrid.__version__}"


def test_every_run_records_the_version_that_made_it(grid):
    assert {r.data.tags["reprogrid.version"] for r in grid_runs(grid)} == {reprogrid.__version__}
