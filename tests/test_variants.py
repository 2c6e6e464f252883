"""The `variants` axis (issue 31): named changes of the training compared run for run on
matched seeds. The example config (config/examples/variants.yaml) runs through the real
workflow: a placebo, a change that helps and one that does not."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import nct, t

from conftest import REPO, grid_runs, run_snakemake, tiny_config, user_package
from reprogrid import config as cfg
from reprogrid.config import ConfigError

EXAMPLE = REPO / "config" / "examples" / "variants.yaml"
REPROGRID = [sys.executable, "-m", "reprogrid.cli"]


def test_a_variant_merges_into_the_config_key_by_key():
    config = tiny_config(variants={"base": None, "wide": {"model": {"hidden": [64]}, "training": {"lr": 0.1}}})
    wide = cfg.with_variant(config, "wide")
    assert wide["model"] == {"name": "mlp", "hidden": [64], "dropout": 0.1}
    assert wide["training"]["lr"] == 0.1 and wide["training"]["epochs"] == 2
    assert cfg.with_variant(config, "base")["model"] == config["model"]
    assert config["model"]["hidden"] == [32]  # the config itself is left as it was


def test_run_keys_and_run_configs_gain_the_variant_and_only_with_variants():
    assert cfg.run_keys(tiny_config())[0] == "all_fixed/t1/r1"
    config = tiny_config(variants={"base": {}, "fast": {"training": {"lr": 0.1}}})
    keys = cfg.run_keys(config)
    assert len(keys) == 2 * 2 * 2 * 2 and keys[:3] == ["all_fixed/t1/base/r1", "all_fixed/t1/base/r2",
                                                       "all_fixed/t1/fast/r1"]
    fast = cfg.resolve_run_config(config, "init", "t1", 2, "fast")
    assert fast["run_key"] == "init/t1/fast/r2" and fast["variant"] == "fast" and fast["training"]["lr"] == 0.1
    assert "variant" not in cfg.resolve_run_config(tiny_config(), "init", "t1", 2)


def test_a_variant_whose_config_is_wrong_is_refused_naming_it():
    config = tiny_config(variants={"base": {}, "bad": {"training": {"factory": "pkg.mod:fit", "epochs": 3,
                                                                     "kwargs": {"epochs": 4}}}})
    with pytest.raises(ConfigError, match=r"config key variants.bad: its config is not valid: config key "
                                          r"training.epochs: 3 and training.kwargs.epochs 4 disagree"):
        cfg.check_config(config)
    command = {"experiment": "x", "root_seed": 1, "replicates": 2, "training": {"command": "python t.py {seed}"},
               "seed_settings": {"fixed": {"script": "fixed"}}, "library_configs": {"t1": {}},
               "variants": {"a": {}, "b": {"model": {"name": "mlp"}}}}
    with pytest.raises(ConfigError, match=r"variants.b.model: does not apply to a training.command run"):
        cfg.check_config(command)


@pytest.mark.workflow
def test_the_schema_checks_each_variants_config_before_any_work(tmp_path):
    config = tiny_config(variants={"base": {}, "negative": {"training": {"lr": -1}}})
    done = run_snakemake(tmp_path, "--cores", "1", config=config)
    assert done.returncode != 0
    assert "config key variants.negative: its config is not valid: config key training.lr" in done.stderr
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example grid, run as its header says."""
    workdir = tmp_path_factory.mktemp("variants")
    done = run_snakemake(workdir, "--cores", "2", "--configfile", str(EXAMPLE))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return workdir


def example_runs(workdir, key=None):
    return grid_runs(workdir, key, experiment="reprogrid-variants")


def rows(workdir, name="variants.csv") -> list[dict]:
    with open(workdir / "results" / "compare" / name) as handle:
        return list(csv.DictReader(handle))


def row(workdir, setting, a, b, metric="test_accuracy") -> dict:
    return next(r for r in rows(workdir) if (r["setting"], r["variant_a"], r["variant_b"], r["metric"])
                == (setting, a, b, metric))


def sealed(workdir, key, name) -> dict:
    return json.loads((workdir / "results" / "runs" / key / name).read_text())


REPLICATES = range(1, 6)


@pytest.mark.workflow
def test_the_placebo_is_seed_noise_and_under_fixed_seeds_the_base_bit_for_bit(example):
    assert row(example, "varied", "base", "placebo")["verdict"] == "within seed noise"
    fixed = row(example, "fixed", "base", "placebo")
    assert fixed["verdict"] == "one observation" and fixed["bitwise_identical"] == "true"
    for r in REPLICATES:  # run for run, from the sealed files
        base, placebo = (sealed(example, f"fixed/t1/{v}/r{r}", "train.json") for v in ("base", "placebo"))
        assert base["hashes"]["weights"] == placebo["hashes"]["weights"]
        assert base["hashes"]["init_weights"] == placebo["hashes"]["init_weights"]


@pytest.mark.workflow
def test_the_helpful_change_is_found_better_with_an_interval_clear_of_zero(example):
    found = row(example, "varied", "base", "lr_0.1")
    assert found["verdict"] == "B better"
    assert 0 < float(found["ci_low"]) < float(found["mean_difference"]) < float(found["ci_high"])
    # the same numbers from the runs' own evaluations: B − A per replicate, paired t interval
    differences = np.array([accuracy(example, f"varied/t1/lr_0.1/r{r}") - accuracy(example, f"varied/t1/base/r{r}")
                            for r in REPLICATES])
    half = t.ppf(0.975, len(differences) - 1) * differences.std(ddof=1) / math.sqrt(len(differences))
    assert float(found["mean_difference"]) == pytest.approx(differences.mean(), abs=1e-12)
    assert float(found["ci_low"]) == pytest.approx(differences.mean() - half, abs=1e-12)


def accuracy(workdir, key) -> float:
    return sealed(workdir, key, "eval.json")["metrics"]["test_accuracy"]


def paired_power(effect, sd, runs) -> float:
    """The paired two-sided t-test's power at alpha 0.05, written out (noncentral t)."""
    dof, shift = runs - 1, effect / (sd / math.sqrt(runs))
    critical = t.ppf(0.975, dof)
    wrong_side = nct.cdf(-critical, dof, shift)  # NaN far in the tail, where it is 0
    return nct.sf(critical, dof, shift) + (0.0 if math.isnan(wrong_side) else wrong_side)


@pytest.mark.workflow
def test_seeds_needed_agree_with_the_power_formula(example):
    checked = 0
    for found in rows(example):
        if found["setting"] != "varied" or found["metric"] != "test_accuracy" or not found["seeds_needed"]:
            continue
        differences = np.array([accuracy(example, f"varied/t1/{found['variant_b']}/r{r}")
                                - accuracy(example, f"varied/t1/{found['variant_a']}/r{r}") for r in REPLICATES])
        sd = differences.std(ddof=1)
        for column, effect in (("seeds_needed", 0.01), ("seeds_to_tell_observed", abs(differences.mean()))):
            needed = int(found[column])
            assert paired_power(effect, sd, needed) >= 0.8
            assert needed == 3 or paired_power(effect, sd, needed - 1) < 0.8  # 3: the fewest a verdict takes
        checked += 1
    assert checked >= 4  # every pair but the placebo's (no noise: no number of seeds)


@pytest.mark.workflow
def test_seeds_are_matched_across_variants_from_seeds_json(example):
    for setting in ("fixed", "varied"):
        for r in REPLICATES:
            seeds = [sealed(example, f"{setting}/t1/{v}/r{r}", "seeds.json")["seeds"]
                     for v in ("base", "lr_0.1", "dropout", "placebo")]
            assert all(s == seeds[0] for s in seeds)
    varied = [sealed(example, f"varied/t1/base/r{r}", "seeds.json")["seeds"]["init"]["seed"] for r in REPLICATES]
    assert len(set(varied)) == 5  # matched across variants, not the same in every replicate


@pytest.mark.workflow
def test_mlflow_tags_the_variant_and_the_audit_counts_variants_as_cells(example):
    runs = example_runs(example)
    assert len(runs) == 2 * 4 * 5
    for run in runs:
        tags = run.data.tags
        assert tags["reprogrid.run_key"] == "/".join((tags["reprogrid.setting"], tags["reprogrid.libconf"],
                                                       tags["reprogrid.variant"], "r" + tags["reprogrid.replicate"]))
    lr = next(r for r in runs if r.data.tags["reprogrid.run_key"] == "varied/t1/lr_0.1/r1")
    assert lr.data.params["training.lr"] == "0.1"
    audit = json.loads((example / "results" / "audit.json").read_text())
    assert audit["ok"] and audit["counts"]["expected"] == 40 and len(audit["cells"]) == 8
    assert {c["variant"] for c in audit["cells"]} == {"base", "lr_0.1", "dropout", "placebo"}
    report = (example / "results" / "compare" / "report.html").read_text()
    assert "Is the change real?" in report
    # each variant's cells are named apart, and never set against another variant's as "the same seeds"
    assert "<b>fixed × t1 × placebo</b>" in report and "t1 and t1" not in report
    summary = rows(example, "summary.csv")
    assert len(summary) == 8 and {r["variant"] for r in summary} == {"base", "lr_0.1", "dropout", "placebo"}


@pytest.mark.workflow
def test_one_run_of_a_variant_reruns_alone_and_replays_bitwise(example, tmp_path):
    key = "varied/t1/lr_0.1/r2"
    before = sealed(example, key, "train.json")["hashes"]["weights"]
    done = run_snakemake(example, "--cores", "1", "--configfile", str(EXAMPLE), "--forcerun", "train",
                         f"results/runs/{key}/eval.json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sealed(example, key, "train.json")["hashes"]["weights"] == before
    assert len(example_runs(example, key)) == 2  # the rerun recorded anew; the first stays as history
    assert len(example_runs(example, "varied/t1/lr_0.1/r1")) == 1
    run_id = max(example_runs(example, key), key=lambda r: r.info.start_time).info.run_id
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    replay = subprocess.run([*REPROGRID, "replay", run_id, "--tracking-uri",
                             f"sqlite:///{example}/results/mlflow.db"], cwd=tmp_path, capture_output=True, text=True,
                            env=environment, timeout=600)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    replayed = grid_runs(example, key, kind="replay", experiment="reprogrid-variants")
    assert [r.data.tags["reprogrid.replay.verdict"] for r in replayed] == ["bitwise"]
    audit = subprocess.run([*REPROGRID, "audit", "--tracking-uri", f"sqlite:///{example}/results/mlflow.db",
                            "--experiment", "reprogrid-variants"], cwd=tmp_path, capture_output=True, text=True,
                           env=environment, timeout=600)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "varied × t1 × lr_0.1" in audit.stdout  # the rerun is history, the replay not a grid run


FIT = '''
import torch
from torch.nn import functional as F


def fit(run, epochs=2, lr=0.01):
    loader = run.loader(run.train_data, batch_size=64, shuffle=True)  # before the model, as many scripts do
    model = run.model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for epoch in range(1, epochs + 1):
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        run.epoch_end(model, epoch)
    return model
'''


@pytest.mark.workflow
def test_variants_reach_a_fit_through_its_kwargs(tmp_path):
    package = user_package(tmp_path, "mine", "loops", FIT)
    config = tiny_config(training={"factory": f"{package}.loops:fit", "kwargs": {"epochs": 2, "lr": 0.01}},
                         seed_settings={"fixed": {}}, library_configs={"t1": {}}, replicates=1,
                         variants={"slow": {}, "fast": {"training": {"kwargs": {"lr": 0.1}}}})
    done = run_snakemake(tmp_path, "--cores", "1", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    params = {r.data.tags["reprogrid.variant"]: r.data.params for r in grid_runs(tmp_path)}
    assert params["slow"]["training.kwargs.lr"] == "0.01" and params["fast"]["training.kwargs.lr"] == "0.1"
    assert params["slow"]["training.kwargs.epochs"] == params["fast"]["training.kwargs.epochs"] == "2"
    weights = {v: sealed(tmp_path, f"fixed/t1/{v}/r1", "train.json")["hashes"] for v in ("slow", "fast")}
    assert weights["slow"]["init_weights"] == weights["fast"]["init_weights"]  # matched: the same start
    assert weights["slow"]["weights"] != weights["fast"]["weights"]


@pytest.mark.workflow
def test_a_variant_sets_a_training_commands_own_argument(tmp_path):
    shutil.copy(REPO / "examples" / "scripts" / "classify.py", tmp_path / "classify.py")
    config = {"experiment": "reprogrid-test", "root_seed": 3, "replicates": 1,
              "training": {"command": "python classify.py --seed {seed} --epochs 1 --lr {lr} --out {outdir}",
                           "args": {"lr": 0.05}, "outputs": {"metrics": "metrics.json"}},
              "seed_settings": {"fixed": {"script": "fixed", "numpy": "fixed"}},
              "library_configs": {"t1": {"threads": 1}},
              "variants": {"base": {}, "fast": {"training": {"args": {"lr": 0.2}}}}}
    done = run_snakemake(tmp_path, "--cores", "1", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    tags = {r.data.tags["reprogrid.variant"]: r.data.tags for r in grid_runs(tmp_path)}
    assert "--lr 0.05 " in tags["base"]["reprogrid.command"] and "--lr 0.2 " in tags["fast"]["reprogrid.command"]
    assert tags["base"]["reprogrid.hash.init_weights"] == tags["fast"]["reprogrid.hash.init_weights"]
    assert tags["base"]["reprogrid.hash.weights"] != tags["fast"]["reprogrid.hash.weights"]
