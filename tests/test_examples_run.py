"""Every shipped example grid, shrunk (two replicates, two epochs), runs through the real
workflow and ends with a report and an audit that holds. (examples/*/ have their own
tests: test_own_loop_example.py, test_own_model_example.py; config/examples/variants.yaml,
test_variants.py.)"""

import csv
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, SNAKEMAKE, run_snakemake
from reprogrid.config import grid_cells

# variants.yaml runs whole in tests/test_variants.py, which asserts what its variants show
EXAMPLES = sorted(p for p in (REPO / "config" / "examples").glob("*.yaml") if p.name != "variants.yaml")


def shrunk(path: Path) -> dict:
    config = yaml.safe_load(path.read_text())
    config["replicates"] = 2
    config["training"]["epochs"] = 2
    return config


def needs_cuda(config: dict) -> bool:
    return any(libconf.get("device") == "cuda" for libconf in config["library_configs"].values())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_a_shrunk_copy_of_the_example_runs(path, tmp_path):
    config = shrunk(path)
    if needs_cuda(config) and not torch.cuda.is_available():
        pytest.skip(f"{path.name} trains on CUDA, which this machine does not have")
    done = run_snakemake(tmp_path, "--cores", "2", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "results" / "compare" / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert {(r["setting"], r["libconf"]) for r in summary} == {tuple(c) for c in grid_cells(config)}
    assert all(r["runs"] == "2" for r in summary)
    assert (tmp_path / "results" / "compare" / "report.html").stat().st_size > 0
    audit = subprocess.run([str(SNAKEMAKE.with_name("reprogrid")), "audit"], cwd=tmp_path, capture_output=True,
                           text=True)
    assert audit.returncode == 0, audit.stdout[-3000:]
