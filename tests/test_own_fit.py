"""A user's own training loop (`training.factory`): a fit that breaks the contract gets
one clear error naming the key and the function, and nothing is written."""

import itertools
from pathlib import Path

import pytest

from conftest import run_snakemake, tiny_config, user_package
from reprogrid import config as cfg
from reprogrid.config import ConfigError
from reprogrid.config.seeds import derive_seeds, draw_unseeded
from reprogrid.inputs.data import load_split
from reprogrid.steps.preflight import run_preflight
from reprogrid.training.trainer import train_model

COUNTER = itertools.count()

FITS = '''
import torch
from torch.nn import functional as F


def good(run, epochs=2):
    model = run.model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = run.loader(run.train_data, batch_size=64, shuffle=True)
    for epoch in range(1, epochs + 1):
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        run.epoch_end(model, epoch)
    return model


def raising(run):
    raise ValueError("my loop is broken")


def not_a_module(run):
    model = run.model()
    run.epoch_end(model, 1)
    return "weights"


def silent(run):
    return run.model()


def out_of_order(run):
    model = run.model()
    run.epoch_end(model, 2)
    return model


def exits(run):
    import sys

    good(run, epochs=1)
    sys.exit(0)


def wanders(run):
    import os

    os.chdir("/")
    return good(run, epochs=1)
'''


@pytest.fixture
def fits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return user_package(tmp_path, f"fitpkg{next(COUNTER)}", "loops", FITS)


def fit_config(pkg, function):
    return tiny_config(training={"factory": f"{pkg}.loops:{function}"}, seed_settings={"s": {}},
                       library_configs={"l": {"threads": 1}})


def train(config):
    run_config = cfg.resolve_run_config(config, "s", "l", 1)
    seeds = draw_unseeded(derive_seeds(run_config["root_seed"], run_config["seed_modes"], 1))
    return train_model(run_config, seeds, load_split(run_config["dataset"], seeds["split"]))


def test_a_good_fit_trains_through_the_run_and_is_traced(fits):
    result = train(fit_config(fits, "good"))
    assert [e["epoch"] for e in result.epochs] == [1, 2]
    assert result.rng["init"] == ["torch"] and result.init_weights != "unrecorded"
    assert train(fit_config(fits, "good")).epochs == result.epochs  # every seed fixed: the same bits


BROKEN = [
    ("raising", r"fitpkg\d+\.loops:raising raised ValueError: my loop is broken"),
    ("not_a_module", r"fitpkg\d+\.loops:not_a_module returned str, not the trained torch.nn.Module"),
    ("silent", r"never called run.epoch_end"),
    ("out_of_order", r"run.epoch_end was called for epoch 2 after 0 epochs"),
    ("exits", r"fitpkg\d+\.loops:exits called exit\(0\) instead of returning the trained model"),
]


@pytest.mark.parametrize("function, words", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_fit_that_breaks_the_contract_is_named(fits, function, words):
    with pytest.raises(ConfigError, match=r"^config key training\.factory: .*" + words):
        train(fit_config(fits, function))


def test_a_fit_that_changes_directory_is_put_back_where_the_run_writes(fits, tmp_path):
    result = train(fit_config(fits, "wanders"))
    assert [e["epoch"] for e in result.epochs] == [1] and Path.cwd() == tmp_path


def test_a_fit_that_cannot_be_found_is_refused_at_preflight(fits):
    with pytest.raises(ConfigError, match=r"^config key training\.factory: module .* has no attribute 'absent'"):
        run_preflight(fit_config(fits, "absent"))


@pytest.mark.workflow
def test_a_broken_fit_stops_the_grid_with_no_run_and_no_half_written_files(fits, tmp_path):
    done = run_snakemake(tmp_path, "--cores", "1", config=fit_config(fits, "raising"))
    assert done.returncode != 0
    assert "my loop is broken" in done.stderr
    runs = tmp_path / "results" / "runs"
    assert list(runs.glob("s/l/r*/seeds.json"))  # the failing train job had its seeds
    assert not list(runs.glob("s/l/r*/model.pt")) and not list(runs.glob("s/l/r*/train.json"))
    assert not list(runs.rglob("*.partial*"))
    import sqlite3

    with sqlite3.connect(tmp_path / "results" / "mlflow.db") as db:
        assert db.execute("select count(*) from runs").fetchone()[0] == 0
