"""Training code as people write it, through `fit(run)`: two public PyTorch examples
ported as a new user ports them (examples/mnist_port: its own DataLoader built before its
model, dropout, Adadelta and StepLR; examples/vae_port: a `forward` returning a tuple,
`torch.randn_like`, its own evaluation), and the orders in which people build things."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import REPO, run_snakemake, tiny_config, user_package
from reprogrid import config as cfg
from reprogrid.config import ConfigError
from reprogrid.config.seeds import derive_seeds, draw_unseeded
from reprogrid.inputs.data import load_split
from reprogrid.training.contract import FitError
from reprogrid.training.trainer import train_model

REPROGRID = Path(sys.executable).with_name("reprogrid")
MNIST = REPO / "examples" / "mnist_port"
VAE = REPO / "examples" / "vae_port"

ORDERS = '''
import torch
from torch.nn import functional as F

from mnist import Net, train


def _train(run, model, loader, epochs):
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    for epoch in range(1, epochs + 1):
        run.epoch_end(model, epoch, train_loss=train(100, model, run.device, loader, optimizer, epoch))
    return model


def loader_first(run, epochs=1):
    loader = run.loader(run.train_data, batch_size=64, shuffle=True)
    return _train(run, run.model(), loader, epochs)


def model_first(run, epochs=1):
    model = run.model()
    return _train(run, model, run.loader(run.train_data, batch_size=64, shuffle=True), epochs)


def own_loader_first(run, epochs=1):
    loader = torch.utils.data.DataLoader(run.train_data, batch_size=64, shuffle=True)
    return _train(run, Net(), loader, epochs)


def own_model_first(run, epochs=1):
    model = Net()
    return _train(run, model, torch.utils.data.DataLoader(run.train_data, batch_size=64, shuffle=True), epochs)


def peeks_then_builds(run, epochs=1):
    loader = torch.utils.data.DataLoader(run.train_data, batch_size=64, shuffle=True)
    features, _ = next(iter(loader))
    return _train(run, Net(), loader, epochs)


def workers_as_keyword(run, epochs=1):
    return _train(run, run.model(), run.loader(run.train_data, batch_size=64, num_workers=2), epochs)
'''


@pytest.fixture
def orders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(MNIST))
    return user_package(tmp_path, "orders", "fits", ORDERS)


def train(fit: str, setting: dict | None = None, replicate: int = 1):
    config = tiny_config(model={"factory": "mnist:Net"}, training={"factory": f"orders.fits:{fit}"},
                         seed_settings={"s": setting or {}}, library_configs={"l": {"threads": 1}})
    run_config = cfg.resolve_run_config(config, "s", "l", replicate)
    seeds = draw_unseeded(derive_seeds(run_config["root_seed"], run_config["seed_modes"], replicate))
    return train_model(run_config, seeds, load_split(run_config["dataset"], seeds["split"]))


def streams(result) -> tuple:
    return result.init_weights, result.epochs, result.rng, result.sources_used


@pytest.mark.parametrize("first, second", [("loader_first", "model_first"), ("own_loader_first", "own_model_first")])
def test_the_order_a_fit_builds_in_changes_no_stream(orders, first, second):
    a, b = train(first), train(second)
    assert streams(a) == streams(b)
    # the loop draws dropout masks (and its own DataLoader's shuffle) from torch's generator, nothing else
    assert a.rng["train"] == ["torch"] and all(e["rng"] == ["torch"] for e in a.epochs)
    assert a.rng["init"] == ["torch"]


@pytest.mark.parametrize("fit", ["loader_first", "own_loader_first"])
def test_varying_dropout_changes_the_weights_of_a_loader_first_port(orders, fit):
    runs = [train(fit, {"dropout": "vary"}, replicate) for replicate in (1, 2)]
    assert runs[0].init_weights == runs[1].init_weights  # init is fixed
    assert runs[0].epochs[-1]["weights"] != runs[1].epochs[-1]["weights"]
    assert "dropout" in runs[0].sources_used


def test_sources_used_are_those_the_loop_drew_from(orders):
    assert train("loader_first").sources_used == ["split", "init", "order", "dropout"]
    assert train("own_loader_first").sources_used == ["split", "init", "dropout"]  # its DataLoader is its own


def test_a_model_built_after_training_began_is_refused_naming_the_line(orders):
    with pytest.raises(FitError, match=r"Net was built at fits.py:\d+ after training began \(a DataLoader was "
                                       r"iterated at fits.py:\d+\).*run.model\(\)"):
        train("peeks_then_builds")


def test_run_loader_refuses_what_the_library_configuration_sets(orders):
    with pytest.raises(FitError, match="num_workers.*library configuration"):
        train("workers_as_keyword")


def test_a_fit_has_one_epoch_count():
    config = tiny_config(training={"factory": "a.b:fit", "epochs": 15, "kwargs": {"epochs": 4}})
    with pytest.raises(ConfigError, match=r"training.epochs: 15 and training.kwargs.epochs 4 disagree"):
        cfg.check_config(config)
    config = tiny_config(training={"factory": "a.b:fit", "kwargs": {"epochs": 4}},
                         library_configs={"r": {"interrupt_after_epoch": 5}})
    with pytest.raises(ConfigError, match=r"interrupt_after_epoch: 5 is not before the last epoch "
                                          r"\(training.kwargs.epochs is 4\)"):
        cfg.check_config(config)
    resolved = cfg.resolve_run_config(tiny_config(training={"factory": "a.b:fit", "kwargs": {"epochs": 4}}),
                                      "all_fixed", "t1", 1)
    assert resolved["training"] == {"factory": "a.b:fit", "kwargs": {"epochs": 4}}  # no built-in loop defaults
    assert "augment" not in resolved  # the built-in loop's augmentation


def copy_example(example: Path, workdir: Path, **changes) -> Path:
    shutil.copytree(example, workdir, ignore=shutil.ignore_patterns("results", ".snakemake", "__pycache__"))
    config = yaml.safe_load((workdir / "config.yaml").read_text()) | changes
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def runs_by_key(workdir: Path, experiment: str) -> dict:
    client = MlflowClient(f"sqlite:///{workdir}/results/mlflow.db")
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                               "tags.`reprogrid.kind` = 'run'")
    return {r.data.tags["reprogrid.run_key"]: r for r in found}


def diverge(workdir: Path, run_a, run_b) -> dict:
    out = workdir / "diverge.json"
    done = subprocess.run([str(REPROGRID), "diverge", run_a.info.run_id, run_b.info.run_id, "--json", str(out)],
                          cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.workflow
def test_the_mnist_port_is_recorded_as_it_ran(tmp_path):
    workdir = copy_example(MNIST, tmp_path / "mnist", replicates=2,
                           training={"factory": "mnist:fit", "kwargs": {"epochs": 2, "lr": 1.0, "batch_size": 64}})
    done = run_snakemake(workdir, "--cores", "2", "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    with open(workdir / "results" / "compare" / "summary.csv") as handle:
        cells = {(r["setting"], r["libconf"]): r for r in csv.DictReader(handle)}
    # `order` varies but its stream never reaches the fit's own DataLoader: predicted and found bitwise
    assert cells[("order", "t1")]["expect_bitwise"] == "true" and cells[("order", "t1")]["bitwise_reproducible"] == "true"
    assert cells[("order", "t1")]["unused_sources"] == "order"
    assert cells[("dropout", "t1")]["expect_bitwise"] == "false" and cells[("dropout", "t1")]["distinct_weights"] == "2"
    # num_workers: 2 never reached the fit (no run.loader worker started): flagged, not reported as a measurement
    assert [cells[("fixed", lc)]["library_unreached"] for lc in ("t1", "workers")] == ["", "num_workers"]
    report = (workdir / "results" / "compare" / "report.html").read_text()
    assert "the num_workers of workers did not reach the runs: no run.loader worker started" in report
    assert "but the runs never drew from its stream: it cannot make them differ" in report

    by_key = runs_by_key(workdir, "mnist-port")
    run = by_key["fixed/workers/r1"]
    own = {k: v for k, v in run.data.params.items() if not k.startswith(("seed", "lib.", "dataset.", "root_seed"))}
    assert own == {"model.factory": "mnist:Net", "training.factory": "mnist:fit", "training.kwargs.epochs": "2",
                   "training.kwargs.lr": "1.0", "training.kwargs.batch_size": "64"}
    assert run.data.tags["reprogrid.lib_unreached"] == "num_workers"
    assert by_key["order/t1/r1"].data.tags["reprogrid.unused_sources"] == "order"
    train_json = json.loads((workdir / "results" / "runs" / "fixed" / "workers" / "r1" / "train.json").read_text())
    assert train_json["library_effective"]["num_workers"] == 0 and train_json["loader_workers_started"] == 0
    assert "Train Epoch: 1 [0/" in (workdir / "results" / "logs" / "fixed" / "t1" / "r1" / "train.log").read_text()
    audit = subprocess.run([str(REPROGRID), "audit"], cwd=workdir, capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # runs that differ by torch's global seed, in a fit with its own DataLoader: its shuffle draws first
    found = diverge(workdir, by_key["dropout/t1/r1"], by_key["dropout/t1/r2"])
    assert found["cause"] in ("random_op", "input") and found["generator"] in ("dropout", "torch")
    assert (found["epoch"], found["step"]) == (1, 1) and found["op"] == "aten::random_"


@pytest.mark.workflow
def test_the_vae_port_is_audited_through_its_own_evaluation(tmp_path):
    workdir = copy_example(VAE, tmp_path / "vae", replicates=2,
                           training={"factory": "vae:fit", "kwargs": {"epochs": 2, "batch_size": 128}})
    done = run_snakemake(workdir, "--cores", "2", "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    with open(workdir / "results" / "compare" / "summary.csv") as handle:
        cells = {r["setting"]: r for r in csv.DictReader(handle)}
    assert cells["fixed"]["bitwise_reproducible"] == "true" and cells["noise"]["bitwise_reproducible"] == "false"
    assert float(cells["fixed"]["test_loss_mean"]) > 0
    audit = subprocess.run([str(REPROGRID), "audit"], cwd=workdir, capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    by_key = runs_by_key(workdir, "vae-port")
    replay = subprocess.run([str(REPROGRID), "replay", by_key["noise/t1/r1"].info.run_id], cwd=workdir,
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0 and "verdict: bitwise" in replay.stdout, replay.stdout + replay.stderr
    found = diverge(workdir, by_key["noise/t1/r1"], by_key["noise/t1/r2"])
    assert (found["cause"], found["op"], found["generator"]) == ("random_op", "aten::randn_like", "dropout")
    assert found["phase"] == "forward" and found["module"] == "VAE"


TUPLE_MODEL = '''
import torch


class Pair(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.layer(x), x.mean()


def wrong_return(model, run):
    return {"metrics": {"test_loss": 1.0}}


def no_judged_metric(model, run):
    return {"metrics": {"elbo": 1.0}, "outputs": torch.zeros(len(run.test_data))}
'''


@pytest.fixture
def tuple_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return user_package(tmp_path, "pairpkg", "models", TUPLE_MODEL)


def test_a_model_returning_a_tuple_is_refused_naming_the_way_in(tuple_model):
    from reprogrid.steps.preflight import run_preflight

    with pytest.raises(ConfigError, match=r"model.factory: the model returned tuple.*`evaluation: \{factory:"):
        run_preflight(tiny_config(model={"factory": "pairpkg.models:Pair"}))


@pytest.mark.parametrize("evaluate, problem", [
    ("wrong_return", r"returned dict; it must return \{'metrics'"),
    ("no_judged_metric", r"metrics \(elbo\) name none of test_accuracy, test_rmse, test_loss"),
])
def test_an_own_evaluation_that_breaks_the_contract_is_refused_before_any_run(tuple_model, evaluate, problem):
    from reprogrid.steps.preflight import run_preflight

    with pytest.raises(ConfigError, match=rf"evaluation.factory: .*{problem}"):
        run_preflight(tiny_config(model={"factory": "pairpkg.models:Pair"},
                                  evaluation={"factory": f"pairpkg.models:{evaluate}"}))


NOISY = '''
import torch
from torch.nn import functional as F


def fit(run, epochs=1):
    """Weight noise after each epoch's steps, from torch's global generator: outside any
    optimizer step, so no step's fingerprints see it."""
    model = run.model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for epoch in range(1, epochs + 1):
        for x, y in run.loader(run.train_data, batch_size=256):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(1e-3 * torch.randn_like(parameter))
        run.epoch_end(model, epoch)
    return model
'''


@pytest.mark.workflow
def test_diverge_says_it_could_not_localise_rather_than_name_a_cause_it_did_not_see(tmp_path):
    package = user_package(tmp_path, "noisy", "loop", NOISY)
    config = tiny_config(training={"factory": f"{package}.loop:fit"}, replicates=2,
                         model={"name": "mlp", "hidden": [16], "dropout": 0.0},
                         seed_settings={"dropout": {"dropout": "vary"}}, library_configs={"t1": {"threads": 1}})
    done = run_snakemake(tmp_path, "--cores", "2", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    by_key = runs_by_key(tmp_path, "reprogrid-test")
    found = diverge(tmp_path, by_key["dropout/t1/r1"], by_key["dropout/t1/r2"])
    assert found["cause"] is None and found["epoch"] == 1
    assert found["detail"].startswith("could not localise: every step of epoch 1 fingerprints the same")
