import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def tiny_config(**overrides) -> dict:
    """A grid small enough for tests: 2 settings x 2 libconfs x 2 replicates of a small MLP."""
    config = {
        "experiment": "reprogrid-test",
        "root_seed": 7,
        "replicates": 2,
        "dataset": {"name": "digits", "test_fraction": 0.2},
        "model": {"name": "mlp", "hidden": [32], "dropout": 0.1},
        "training": {"epochs": 2, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
        "augment": {"noise_std": 0.05},
        "seed_settings": {"all_fixed": {}, "init": {"init": "vary"}},
        "library_configs": {"t1": {"threads": 1}, "numpy_unseeded": {"seed_numpy_global": False}},
    }
    config.update(overrides)
    return config


def run_snakemake(workdir: Path, *args: str, config: dict | None = None, env=None, timeout=600):
    """Run the real workflow in `workdir`, as a user would from a clone."""
    if config is not None:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        args = ("--configfile", "config.yaml", *args)
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environment.update(env or {})
    return subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args],
        cwd=workdir, capture_output=True, text=True, env=environment, timeout=timeout,
    )


@pytest.fixture
def workdir(tmp_path):
    return tmp_path
