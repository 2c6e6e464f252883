"""examples/scripts end to end: two training scripts written as public examples are
(argparse, `torch.manual_seed(args.seed)`, a shuffling DataLoader; NumPy-drawn
augmentation; a VAE's `torch.randn_like`), audited through the real workflow without a
line changed: summary.csv, the report, MLflow and the audit say what each script seeded,
where it drew, and whether its runs reproduce."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, run_snakemake
from reprogrid.record.hashing import file_digest
from reprogrid.record.sealed import read_sealed

pytestmark = pytest.mark.workflow
EXAMPLE = REPO / "examples" / "scripts"
REPROGRID = Path(sys.executable).with_name("reprogrid")


def line_of(script: Path, text: str) -> int:
    """The line of code (past the docstring, which shows usage) holding `text`."""
    lines = script.read_text().splitlines()
    code_starts = lines.index('"""', 1)
    return next(n for n, line in enumerate(lines, 1) if n > code_starts and text in line)


def audited(tmp_path, config: str) -> tuple[Path, dict, str]:
    """The example copied as a user has it, its grid run; (its folder, summary rows by cell, the audit's text)."""
    workdir = tmp_path / "scripts"
    shutil.copytree(EXAMPLE, workdir, ignore=shutil.ignore_patterns("results", ".snakemake", "__pycache__"))
    done = run_snakemake(workdir, "--cores", "2", "--configfile", config, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(workdir / "results" / "compare" / "summary.csv") as handle:
        cells = {(row["setting"], row["libconf"]): row for row in csv.DictReader(handle)}
    assert set(cells) == {(s, t) for s in ("fixed", "varied", "fixed_np") for t in ("t1", "t2")}
    audit = subprocess.run([str(REPROGRID), "audit"], cwd=workdir, capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    return workdir, cells, audit.stdout


def ran_unchanged(workdir: Path, script: str) -> None:
    """Every run's watch hashed the code that ran, the script and what it imported from its
    folder: the script alone, byte for byte the one shipped (which `python script.py` runs
    on its own)."""
    records = [read_sealed(p) for p in (workdir / "results" / "runs").glob("*/*/r*/train.json")]
    assert len(records) == 12
    for record in records:
        assert record["code_files"] == {script: file_digest(EXAMPLE / script)}
        assert record["script"] == str(workdir / script) and record["command"].startswith(f"python {script} --seed ")


def test_the_classifier_is_found_not_bitwise_for_numpys_unseeded_augmentation_and_fixing_numpy_fixes_it(tmp_path):
    workdir, cells, audit = audited(tmp_path, "classify.yaml")
    ran_unchanged(workdir, "classify.py")
    script = workdir / "classify.py"
    augment = f"classify.py:{line_of(script, 'np.random.normal')}"
    seeded = f"seeds torch at classify.py:{line_of(script, 'torch.manual_seed(args.seed)')} with the command's {{seed}}"
    for threads in ("t1", "t2"):
        fixed, varied, fixed_np = cells["fixed", threads], cells["varied", threads], cells["fixed_np", threads]
        # --seed fixed, NumPy left as a plain interpreter has it: predicted and found not bitwise, NumPy named
        assert (fixed["expect_bitwise"], fixed["bitwise_reproducible"], fixed["varied_sources"]) == (
            "false", "false", "numpy")
        assert seeded + " (fixed)" in fixed["seeding"]
        assert (f"but draws from NumPy's global generator in {augment} and never seeds it (numpy: plain"
                in fixed["seeding"])
        # the augmentation's noise is drawn at the first step: the replicates part there
        assert fixed["first_divergent_step"] == "1"
        # fixing NumPy before line one: bitwise, as predicted
        assert (fixed_np["expect_bitwise"], fixed_np["bitwise_reproducible"]) == ("true", "true")
        assert "which reprogrid fixed before the script's first line (numpy: fixed)" in fixed_np["seeding"]
        # --seed varied: the initial weights differ already
        assert varied["bitwise_reproducible"] == "false" and varied["varied_sources"] == "numpy,script"
        assert varied["first_divergent_step"] == "0"
        assert float(fixed["disagreement_mean"]) > 0 and float(fixed_np["disagreement_mean"]) == 0
    report = (workdir / "results" / "compare" / "report.html").read_text()
    assert f"but draws from NumPy&#39;s global generator in {augment} and never seeds it" in report
    assert f"but draws from NumPy's global generator in {augment} and never seeds it" in audit
    assert "fixed_np × t1                          2/2  bitwise        1      1  bitwise reproducible" in audit
    readme = (REPO / "README.md").read_text()
    excerpt = readme.split("<!-- audit-of-classify: begin -->")[1].split("<!-- audit-of-classify: end -->")[0]
    quoted = [line for line in excerpt.splitlines() if line.strip() and not line.startswith("```")]
    assert len(quoted) == 4 and [line for line in quoted if line not in audit.splitlines()] == []

    client = MlflowClient(f"sqlite:///{workdir / 'results' / 'mlflow.db'}")
    [experiment] = [e for e in client.search_experiments() if e.name == "script-classify"]
    runs = client.search_runs([experiment.experiment_id], "tags.`reprogrid.kind` = 'run'")
    assert len(runs) == 12
    for run in runs:
        assert run.data.tags["reprogrid.command"].startswith("python classify.py --seed ")
        assert run.data.tags["reprogrid.command"].endswith(f"/results/runs/{run.data.tags['reprogrid.run_key']}/output")
        assert augment in run.data.tags["reprogrid.seeding"]
        assert {"seed.script", "seed.numpy", "seed_mode.numpy", "seed.hash"} <= set(run.data.params)
        assert 0.5 < run.data.metrics["test_accuracy"] <= 1

    # replayed from MLflow alone, from another directory: NumPy's plain seed was recorded, so bitwise
    uri = f"sqlite:///{workdir / 'results' / 'mlflow.db'}"
    [first, second] = [read_sealed(workdir / "results" / "runs" / "fixed" / "t1" / f"r{r}" / "eval.json")["mlflow_run_id"]
                       for r in (1, 2)]
    replay = subprocess.run([str(REPROGRID), "replay", first, "--tracking-uri", uri], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "recorded steps compared: identical" in replay.stdout and "verdict: bitwise" in replay.stdout
    diverge = subprocess.run([str(REPROGRID), "diverge", first, second, "--tracking-uri", uri], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert diverge.returncode == 1, diverge.stdout + diverge.stderr  # 1: diverged, localised
    # re-run with the probe: the augmentation's NumPy noise enters the first step from outside torch
    assert diverge.stdout.startswith("diverged at step 1, input\ncause: input (generator: numpy)\n")
    assert f"(from `numpy`, drawn at {augment} by numpy.random.normal)" in diverge.stdout
    excerpt = readme.split("<!-- diverge-of-classify: begin -->")[1].split("<!-- diverge-of-classify: end -->")[0]
    assert [line for line in excerpt.splitlines() if line and not line.startswith("```")] == diverge.stdout.splitlines()


def test_the_vaes_latent_noise_and_shuffle_are_torchs_and_follow_the_seed(tmp_path):
    workdir, cells, audit = audited(tmp_path, "vae.yaml")
    ran_unchanged(workdir, "vae.py")
    script = workdir / "vae.py"
    noise = f"vae.py:{line_of(script, 'torch.randn_like')} (randn_like)"
    shuffle = f"vae.py:{line_of(script, 'for (batch,) in loader')} (DataLoader shuffle)"
    seeded = f"vae.py seeds torch at vae.py:{line_of(script, 'torch.manual_seed(args.seed)')} with the command's {{seed}}"
    for threads in ("t1", "t2"):
        for setting in ("fixed", "fixed_np"):
            row = cells[setting, threads]
            assert (row["expect_bitwise"], row["bitwise_reproducible"]) == ("true", "true")
            assert row["seeding"].startswith(seeded + " (fixed) and draws from torch's global generator at ")
            assert noise in row["seeding"] and shuffle in row["seeding"] and "NumPy" not in row["seeding"]
        varied = cells["varied", threads]
        assert (varied["expect_bitwise"], varied["bitwise_reproducible"], varied["varied_sources"]) == (
            "false", "false", "script")
        assert seeded + " (varied per replicate)" in varied["seeding"]
    assert noise in audit and "12 current runs of 12 expected" in audit


BAD_SCRIPT = """\
import json, sys, time
from pathlib import Path
import torch

replicate, out = int(sys.argv[1]), Path(sys.argv[2])
model = torch.nn.Linear(2, 1)
torch.save(model.state_dict(), out / "model.pt")
if replicate == 2:
    raise SystemExit("boom: replicate 2 crashes")
if replicate == 3:
    time.sleep(600)
if replicate != 4:  # 4 writes no metrics file
    (out / "metrics.json").write_text("{not json" if replicate == 5 else json.dumps({"test_loss": 1.0}))
"""


def test_a_failing_script_fails_its_run_alone_with_one_line_naming_it_and_the_rest_goes_on(tmp_path):
    (tmp_path / "bad.py").write_text(BAD_SCRIPT)
    config = {"experiment": "bad", "root_seed": 1, "replicates": 5,
              "training": {"command": "python bad.py {replicate} {outdir}", "timeout_s": 20,
                           "outputs": {"metrics": "metrics.json", "model": "model.pt"}},
              "seed_settings": {"fixed": {"script": "fixed"}}, "library_configs": {"t1": {"threads": 1}}}
    done = run_snakemake(tmp_path, "--cores", "2", "--keep-going", config=config)
    assert done.returncode != 0
    runs = tmp_path / "results" / "runs" / "fixed" / "t1"
    logs = Path("results") / "logs" / "fixed" / "t1"  # as the rule names it: in the workflow's directory
    output = done.stdout + done.stderr
    assert f"run fixed/t1/r2: training.command exited with status 1; log {logs / 'r2' / 'train.log'}" in output
    assert "boom: replicate 2 crashes" in output
    assert "run fixed/t1/r3: training.command ran past training.timeout_s (20 s) and was stopped" in output
    assert f"run fixed/t1/r4: training.command wrote no metrics file {runs / 'r4' / 'output' / 'metrics.json'}" in output
    assert f"run fixed/t1/r5: metrics file {runs / 'r5' / 'output' / 'metrics.json'} is not JSON" in output
    # nothing recorded for them; the good run is recorded whole
    assert (runs / "r1" / "eval.json").is_file()
    for replicate in (2, 3, 4, 5):
        assert not (runs / f"r{replicate}" / "train.json").exists()
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    [experiment] = [e for e in client.search_experiments() if e.name == "bad"]
    recorded = client.search_runs([experiment.experiment_id], "tags.`reprogrid.kind` = 'run'")
    assert [r.data.tags["reprogrid.run_key"] for r in recorded] == ["fixed/t1/r1"]
