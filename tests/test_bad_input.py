"""Malformed configs, run for real (`snakemake --cores 2`) in a working directory that
already holds a finished grid: each exits non-zero within seconds, names the key, and
leaves results/ and the MLflow store exactly as they were. (How long the refusals take
is printed, an observation: no test times anything.)"""

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import config_with, run_snakemake

pytestmark = pytest.mark.workflow

# (config path, bad value, the key the message must name)
CASES = [
    ("replicates", "three", "replicates"),
    ("replicates", 0, "replicates"),
    ("replicates", 1_000_000, "replicates"),
    ("root_seed", -1, "root_seed"),
    ("root_seed", 2**64, "root_seed"),
    ("experiment", "", "experiment"),
    ("tracking_uri", "", "tracking_uri"),
    ("training.epochs", -1, "training.epochs"),
    ("training.batch_size", 0, "training.batch_size"),
    ("training.lr", -0.1, "training.lr"),
    ("training.optimizer", "lbfgs", "training.optimizer"),
    ("model.name", "resnet", "model.name"),
    ("model.dropout", 1.5, "model.dropout"),
    ("dataset.name", "imagenet", "dataset.name"),
    ("dataset.test_fraction", 1.5, "dataset.test_fraction"),
    ("dataset", {"path": "missing.csv", "target": "y"}, "dataset.path"),
    ("augment.noise_std", -1, "augment.noise_std"),
    ("seed_settings.init", {"inti": "vary"}, "seed_settings.init.inti"),
    ("seed_settings.init", {"init": "sometimes"}, "seed_settings.init.init"),
    ("library_configs.t1", {"thread": 1}, "library_configs.t1.thread"),
    ("library_configs.t1", {"threads": "two"}, "library_configs.t1.threads"),
    ("library_configs.t1", {"num_workers": -1}, "library_configs.t1.num_workers"),
    ("library_configs.t1", {"device": "cuda"}, "library_configs.t1.device"),  # no CUDA here
    ("seed_settings", {"../x": {}}, "seed_settings['../x']"),
    ("library_configs", {"a/b": {}}, "library_configs['a/b']"),
    ("seed_settings", {}, "seed_settings"),
    ("cells", [], "cells"),
    ("cells", [["all_fixed", "t1"], ["all_fixed", "t1"]], "cells[1]"),
    ("cells", [["nope", "t1"]], "cells[0]"),
    ("reference_libconf", "nope", "reference_libconf"),
    ("surprise", 1, "surprise"),
    # YAML's .nan and .inf: the schema's bounds cannot refuse NaN (every comparison is false)
    ("training.lr", float("nan"), "training.lr"),
    ("training.lr", float("inf"), "training.lr"),
    ("augment.noise_std", float("nan"), "augment.noise_std"),
    ("library_configs.t1", {"threads": 1, "matmul_precision": "highest", "x": float("-inf")}, "library_configs.t1.x"),
    # integers written as floats (yaml.safe_dump of a float): JSON Schema takes 3.0 for an
    # integer, and the changed params would make Snakemake delete every finished run first
    ("training.epochs", 2.0, "training.epochs"),
    ("training.batch_size", 64.0, "training.batch_size"),
    ("library_configs.t1", {"threads": 1.0}, "library_configs.t1.threads"),
    ("root_seed", 7.0, "root_seed"),
    ("replicates", 2.0, "replicates"),
]


def snapshot(workdir) -> dict:
    """Every file under results/ with its size and modification time."""
    return {str(p.relative_to(workdir)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted((workdir / "results").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def recorded(grid, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("recorded") / "grid"
    shutil.copytree(grid, workdir)
    return workdir


def test_malformed_configs_stop_fast_name_the_key_and_write_nothing(recorded):
    before = snapshot(recorded)

    def attempt(number_and_case):
        number, (path, value, key) = number_and_case
        name = f"bad{number}.yaml"
        (recorded / name).write_text(yaml.safe_dump(config_with(path, value)))
        started = time.monotonic()
        done = run_snakemake(recorded, "--cores", "2", "--configfile", name)
        return key, done, time.monotonic() - started

    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(attempt, enumerate(CASES)))
    for key, done, _ in outcomes:
        assert done.returncode != 0, key
        assert f"config key {key}:" in done.stderr, (key, done.stderr[-1500:])
    assert snapshot(recorded) == before
    print(f"\nreliability: {len(CASES)} malformed configs refused, slowest in "
          f"{max(s for _, _, s in outcomes):.1f} s, results/ and the store untouched")


def test_a_key_written_twice_and_an_alias_bomb_are_refused_before_the_schema(recorded):
    before = snapshot(recorded)
    (recorded / "twice.yaml").write_text(yaml.safe_dump(config_with("training.epochs", 2)) + "root_seed: 8\n")
    done = run_snakemake(recorded, "--cores", "2", "--configfile", "twice.yaml")
    assert done.returncode != 0 and "config key root_seed: written twice in one mapping of twice.yaml" in done.stderr
    levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]'] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    (recorded / "bomb.yaml").write_text("\n".join(levels) + "\n")  # 9^9 values in under 400 bytes
    done = run_snakemake(recorded, "--cores", "2", "--configfile", "bomb.yaml", timeout=60)
    assert done.returncode != 0 and "the config expands to more than 200,000 values" in done.stderr
    assert snapshot(recorded) == before
