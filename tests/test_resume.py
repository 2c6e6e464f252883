"""Interrupted and resumed equals uninterrupted: real grids where a library configuration
interrupts every run after an epoch and a fresh process resumes it, a training job
SIGKILLed mid-epoch and rerun with --rerun-incomplete, and loops of one's own that
forget a piece of state, diagnosed by name (reprogrid resume-check)."""

import csv
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, grid_runs, run_snakemake, tiny_config, user_package
from reprogrid.record.sealed import read_json

pytestmark = pytest.mark.workflow
REPROGRID = SNAKEMAKE.with_name("reprogrid")
EVERY_SOURCE = {"init": "vary", "order": "vary", "dropout": "vary", "augment": "vary"}


def summary(workdir) -> dict:
    with open(workdir / "results" / "compare" / "summary.csv") as handle:
        return {(r["setting"], r["libconf"]): r for r in csv.DictReader(handle)}


def train_record(workdir, key) -> dict:
    return read_json(workdir / "results" / "runs" / key / "train.json")


def reprogrid(workdir, *args):
    return subprocess.run([str(REPROGRID), *args], cwd=workdir, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def resumed_grid(tmp_path_factory):
    """Every source varied, a cosine schedule, 0 and 2 loader workers, each uninterrupted
    and interrupted after epoch 2 of 4."""
    workdir = tmp_path_factory.mktemp("resumed")
    training = {"epochs": 4, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                "lr_schedule": "cosine", "checkpoint_interval_s": 0}  # every epoch's: the straight runs write 3
    config = tiny_config(training=training, seed_settings={"every": EVERY_SOURCE}, library_configs={
        "w0": {"threads": 1}, "w0_resumed": {"threads": 1, "interrupt_after_epoch": 2},
        "w2": {"threads": 1, "num_workers": 2}, "w2_resumed": {"threads": 1, "num_workers": 2,
                                                               "interrupt_after_epoch": 2}})
    done = run_snakemake(workdir, "--cores", "2", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


@pytest.mark.parametrize("workers", ["w0", "w2"])
def test_an_interrupted_and_resumed_configuration_ends_as_the_uninterrupted_one(resumed_grid, workers):
    cells = summary(resumed_grid)
    assert cells[("every", workers)]["same_weights_as"] == f"{workers}_resumed"
    assert cells[("every", f"{workers}_resumed")]["same_weights_as"] == workers
    assert cells[("every", workers)]["distinct_weights"] == "2"  # every source varies: the replicates differ
    for replicate in (1, 2):
        straight = train_record(resumed_grid, f"every/{workers}/r{replicate}")
        resumed = train_record(resumed_grid, f"every/{workers}_resumed/r{replicate}")
        assert [e["weights"] for e in resumed["epochs"]] == [e["weights"] for e in straight["epochs"]]
        assert [e["train_loss"] for e in resumed["epochs"]] == [e["train_loss"] for e in straight["epochs"]]
        assert resumed["resumed_from_epoch"] == 2 and straight["resumed_from_epoch"] is None
        assert resumed["checkpoints"]["unrestored"] == [] and resumed["checkpoints"]["unregistered"] == []
        assert straight["checkpoints"]["written"] == 3  # after epochs 1-3; the last is train.json's
        directory = resumed_grid / "results" / "runs" / f"every/{workers}_resumed/r{replicate}"
        assert (directory / "resumed_from.pt").exists() and not (directory / "checkpoint.json").exists()
        assert not list((resumed_grid / "results" / "runs" / f"every/{workers}/r{replicate}").glob("checkpoint*"))


def test_the_record_says_from_which_epoch_and_the_audit_holds(resumed_grid):
    tags = {r.data.tags["reprogrid.run_key"]: r.data.tags for r in grid_runs(resumed_grid)}
    assert tags["every/w2_resumed/r1"]["reprogrid.resumed_from_epoch"] == "2"
    assert "reprogrid.resumed_from_epoch" not in tags["every/w2/r1"]
    audit = reprogrid(resumed_grid, "audit")
    assert audit.returncode == 0, audit.stdout
    check = reprogrid(resumed_grid, "resume-check", "every/w2_resumed/r2", "every/w2/r2")
    assert check.returncode == 0 and "ends bit for bit as the uninterrupted one" in check.stdout


def test_a_run_that_did_not_resume_cannot_be_checked(resumed_grid):
    check = reprogrid(resumed_grid, "resume-check", "every/w0/r1", "every/w0_resumed/r1")
    assert check.returncode == 2 and "every/w0/r1 did not resume from a checkpoint" in check.stderr


def test_a_training_killed_mid_epoch_resumes_from_its_checkpoint_and_ends_bitwise(tmp_path):
    training = {"epochs": 30, "batch_size": 16, "optimizer": "sgd", "lr": 0.02, "momentum": 0.9,
                "lr_schedule": "cosine", "checkpoint_interval_s": 0}  # a checkpoint every epoch: the kill lands after one
    config = tiny_config(replicates=1, model={"name": "mlp", "hidden": [256, 256], "dropout": 0.1},
                         training=training, seed_settings={"every": EVERY_SOURCE},
                         library_configs={"t1": {"threads": 1}})
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir(), killed.mkdir()
    assert run_snakemake(straight, "--cores", "1", config=config).returncode == 0
    (killed / "config.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen([str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--cores", "1",
                                "--configfile", "config.yaml"], cwd=killed, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True,
                               env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    index = killed / "results" / "runs" / "every" / "t1" / "r1" / "checkpoint.json"
    deadline, reached = time.monotonic() + 600, False
    while time.monotonic() < deadline and process.poll() is None and not reached:
        reached = index.exists() and read_json(index)["epoch"] >= 3
        time.sleep(0.01)
    time.sleep(0.05)  # into the next epoch
    trained = (index.parent / "train.json").exists()
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert reached and not trained, "the kill did not land while the run trained past its third epoch"
    done = run_snakemake(killed, "--cores", "1", "--rerun-incomplete", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed, reference = (train_record(w, "every/t1/r1") for w in (killed, straight))
    assert resumed["resumed_from_epoch"] >= 3
    assert resumed["hashes"]["weights"] == reference["hashes"]["weights"]
    assert [e["weights"] for e in resumed["epochs"]] == [e["weights"] for e in reference["epochs"]]


def test_a_checkpoint_of_another_config_is_not_resumed_from(tmp_path):
    """Edit the config after a kill: the old checkpoint belongs to another run."""
    from reprogrid.training.checkpoint import CheckpointFiles

    files = CheckpointFiles(tmp_path, lambda: {"run_key": "s/l/r1", "config": "a"})
    record = json.dumps({"epochs": [{"weights": "w2"}]})  # a resumable payload: its epoch record, no model
    files.write(2, {"epoch": 2, "seeds": {}, "pieces": {"record": record}})
    payload, why = CheckpointFiles(tmp_path, lambda: {"run_key": "s/l/r1", "config": "b"}).latest()
    assert payload is None and why == "checkpoint of epoch 2 ignored: another config"
    payload, why = files.latest()
    assert payload["epoch"] == 2 and why == "resumed from the checkpoint of epoch 2"
    (tmp_path / "checkpoint-e2.pt").write_bytes(b"damaged")
    assert files.latest()[0] is None and "is missing or not what" in files.latest()[1]


@pytest.fixture(scope="module")
def forgetful(tmp_path_factory):
    """examples/resume/forgetful.yaml as shipped: a loop that keeps a generator of its own
    out of its checkpoints."""
    workdir = tmp_path_factory.mktemp("forgetful")
    shutil.copytree(REPO / "examples" / "resume", workdir, dirs_exist_ok=True)
    done = run_snakemake(workdir, "--cores", "2", "--configfile", "forgetful.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def test_a_forgotten_generator_makes_the_resumed_run_differ_and_the_audit_says_so(forgetful):
    assert summary(forgetful)[("every", "resumed")]["same_weights_as"] == ""
    resumed = train_record(forgetful, "every/resumed/r1")
    assert resumed["checkpoints"]["unregistered"] == ["jitter"]
    audit = reprogrid(forgetful, "audit")
    assert audit.returncode == 1
    assert ("VIOLATION [resume_differs] every/resumed/r1, interrupted after epoch 3 and resumed, differs from "
            "every/straight/r1, the same seeds uninterrupted (from epoch 4)") in audit.stdout


def test_resume_check_names_the_forgotten_generator(forgetful):
    check = reprogrid(forgetful, "resume-check", "every/resumed/r1", "every/straight/r1", "--json", "found.json")
    assert check.returncode == 1, check.stderr
    assert check.stdout.splitlines() == [
        "resumed after epoch 3, parted in epoch 4",
        "`jitter` (a generator the fit holds but did not give to run.resumable) was not restored: resumed after "
        "epoch 3, the run starts epoch 4 with it in another state than the uninterrupted run, and parts from it in "
        "epoch 4"]
    found = json.loads((forgetful / "found.json").read_text())
    assert found["culprit"] == "unregistered.jitter" and found["pieces"] == ["unregistered.jitter"]


def test_the_same_loop_naming_its_generator_resumes_bitwise(tmp_path):
    shutil.copytree(REPO / "examples" / "resume", tmp_path, dirs_exist_ok=True)
    done = run_snakemake(tmp_path, "--cores", "2", "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    assert summary(tmp_path)[("every", "resumed")]["same_weights_as"] == "straight"
    assert reprogrid(tmp_path, "audit").returncode == 0


LATE_SCHEDULE = """
import torch
from torch.nn import functional as F


def fit(run, epochs):
    model = run.model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    loader = run.loader(run.train_data, batch_size=64, shuffle=True)
    for epoch in range(run.resumable(model=model, optimizer=optimizer, scheduler=schedule), epochs + 1):
        for inputs, labels in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(inputs), labels).backward()
            optimizer.step()
        run.epoch_end(model, epoch)  # checkpoints before the schedule steps: too early
        schedule.step()
    return model
"""


def own_loop_grid(workdir, name: str, source: str) -> None:
    """One run of the loop in `source`, 3 epochs, straight and interrupted after epoch 1."""
    package = user_package(workdir, name, "train", source)
    config = tiny_config(replicates=1, training={"factory": f"{package}.train:fit", "epochs": 3,
                                                 "kwargs": {"epochs": 3}},
                         seed_settings={"all_fixed": {}},
                         library_configs={"straight": {"threads": 1},
                                          "resumed": {"threads": 1, "interrupt_after_epoch": 1}})
    done = run_snakemake(workdir, "--cores", "2", config=config)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_checkpoint_taken_before_the_schedule_steps_is_diagnosed(tmp_path):
    own_loop_grid(tmp_path, "latepkg", LATE_SCHEDULE)
    check = reprogrid(tmp_path, "resume-check", "all_fixed/resumed/r1", "all_fixed/straight/r1")
    assert check.returncode == 1, check.stderr
    assert "the optimizer's state was not restored" in check.stdout and "['lr']" in check.stdout
    assert "is run.epoch_end called before scheduler.step()?" in check.stdout


TWO_GENERATORS = """
import random

import torch
from torch.nn import functional as F


def fit(run, epochs):
    model = run.model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    jitter = random.Random(run.seed("augment"))  # drawn every batch: it matters
    warmup = random.Random(run.seed("augment") + 1)  # drawn in epoch 1 only: it does not
    loader = run.loader(run.train_data, batch_size=64, shuffle=True)
    for epoch in range(run.resumable(model=model, optimizer=optimizer), epochs + 1):
        for inputs, labels in loader:
            scale = 1.0 + 0.2 * (jitter.random() - 0.5) + (0.0 * warmup.random() if epoch == 1 else 0.0)
            optimizer.zero_grad()
            F.cross_entropy(model(inputs * scale), labels).backward()
            optimizer.step()
        run.epoch_end(model, epoch)
    return model
"""


def test_of_two_forgotten_generators_the_one_that_matters_is_named(tmp_path):
    """Both differ when the resumed epoch starts; restoring each from the reference in
    turn (in a fresh resumed process) shows which one makes the runs part."""
    own_loop_grid(tmp_path, "twopkg", TWO_GENERATORS)
    assert train_record(tmp_path, "all_fixed/resumed/r1")["checkpoints"]["unregistered"] == ["jitter", "warmup"]
    check = reprogrid(tmp_path, "resume-check", "all_fixed/resumed/r1", "all_fixed/straight/r1", "--json", "f.json")
    assert check.returncode == 1, check.stderr
    found = json.loads((tmp_path / "f.json").read_text())
    assert found["pieces"] == ["unregistered.jitter", "unregistered.warmup"]
    assert found["culprit"] == "unregistered.jitter" and check.stdout.splitlines()[1].startswith("`jitter`")


def test_resume_check_refuses_a_reference_that_is_another_run(resumed_grid):
    check = reprogrid(resumed_grid, "resume-check", "every/w0_resumed/r1", "every/w0/r2")
    assert check.returncode == 2
    assert "every/w0/r2 is not every/w0_resumed/r1 uninterrupted: another config and seeds" in check.stderr
