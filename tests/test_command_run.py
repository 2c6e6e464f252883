"""A training.command run to its sealed files, on examples/scripts/classify.py run as it
is: the seeds reprogrid set before its first line, its own seeding by line, NumPy's
unseeded augmentation found and predicted to break bitwise reproducibility, and fixing
NumPy's generator making two runs bit-identical."""

import copy
import json
import shutil

import pytest
import torch
from snakemake.utils import validate

from conftest import REPO
from reprogrid import config as cfg
from reprogrid.command.run import run_command_train
from reprogrid.config.seeds import derive_seeds
from reprogrid.record.sealed import read_sealed
from reprogrid.watch.steps import due
from reprogrid.workflow import SCHEMA_FILE

SCRIPT = REPO / "examples" / "scripts" / "classify.py"
AUGMENT_LINE = next(n for n, line in enumerate(SCRIPT.read_text().splitlines(), 1) if "np.random.normal" in line)
SEED_LINE = next(n for n, line in enumerate(SCRIPT.read_text().splitlines(), 1) if line.strip() == "torch.manual_seed(args.seed)")


def config() -> dict:
    config = {"experiment": "scripts", "root_seed": 3, "replicates": 2,
              "training": {"command": "python classify.py --seed {seed} --epochs 2 --out {outdir}",
                           "outputs": {"metrics": "metrics.json", "model": "model.pt"}, "timeout_s": 300},
              "seed_settings": {"fixed": {"script": "fixed"}, "fixed_np": {"script": "fixed", "numpy": "fixed"}},
              "library_configs": {"t1": {"threads": 1}}}
    validate(config, str(SCHEMA_FILE))
    cfg.check_config(config)
    return config


def trained(project, setting: str, replicate: int) -> dict:
    grid = config()
    run_config = cfg.resolve_run_config(grid, setting, "t1", replicate)
    run_dir = project / "results" / "runs" / run_config["run_key"]
    run_dir.mkdir(parents=True)
    (run_dir / "seeds.json").write_text(json.dumps(
        {"seeds": derive_seeds(grid["root_seed"], run_config["seed_modes"], replicate)}))
    run_command_train(copy.deepcopy(run_config), run_dir / "seeds.json", run_dir / "trained.pt", run_dir / "train.json")
    return read_sealed(run_dir / "train.json")


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copy(SCRIPT, tmp_path / "classify.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_fixed_script_seed_with_numpy_unseeded_is_predicted_and_found_to_differ(project):
    first, second = trained(project, "fixed", 1), trained(project, "fixed", 2)
    script = str(project / "classify.py")
    assert [(s["call"], s["value"], s["where"]) for s in first["seeding"] if s["main"] and not s["library"]] == [
        ("torch.manual_seed", first["seeds"]["script"], f"{script}:{SEED_LINE}")]
    [draw] = [d for d in first["first_draws"] if d["generator"] == "numpy"]
    assert draw["where"] == f"{script}:{AUGMENT_LINE}"
    assert first["expect_bitwise"] is False and "numpy" in first["drawn"]
    assert first["seeds"]["script"] == second["seeds"]["script"]
    assert first["hashes"]["weights"] != second["hashes"]["weights"]
    assert 0.5 < first["metrics"]["test_accuracy"] <= 1


def test_fixing_numpys_generator_makes_the_runs_bit_identical(project):
    first, second = trained(project, "fixed_np", 1), trained(project, "fixed_np", 2)
    assert first["expect_bitwise"] is True
    assert first["hashes"]["weights"] == second["hashes"]["weights"]
    assert first["steps"] == [88]  # 1,400 examples in batches of 32, 2 epochs
    assert first["fingerprints"] == second["fingerprints"]
    assert [step for _, step, _ in first["fingerprints"]] == [0] + [s for s in range(1, 89) if due(s)]


BFLOAT16_SCRIPT = """\
import argparse
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int)
torch.manual_seed(parser.parse_args().seed)
model = torch.nn.Linear(4, 2).to(torch.bfloat16)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    loss = model(torch.ones(8, 4, dtype=torch.bfloat16)).float().pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""


def test_a_bfloat16_model_is_fingerprinted_and_its_final_weights_kept_in_bfloat16(tmp_path, monkeypatch):
    (tmp_path / "train.py").write_text(BFLOAT16_SCRIPT)
    monkeypatch.chdir(tmp_path)
    grid = {"experiment": "bf16", "root_seed": 3, "replicates": 1,
            "training": {"command": "python train.py --seed {seed}", "timeout_s": 300},
            "seed_settings": {"fixed": {"script": "fixed"}}, "library_configs": {"t1": {"threads": 1}}}
    cfg.check_config(grid)
    run_config = cfg.resolve_run_config(grid, "fixed", "t1", 1)
    (tmp_path / "seeds.json").write_text(json.dumps({"seeds": derive_seeds(3, run_config["seed_modes"], 1)}))
    record = run_command_train(run_config, tmp_path / "seeds.json", tmp_path / "model.pt", tmp_path / "train.json")
    assert [step for _, step, _ in record["fingerprints"]] == [0, 1, 2, 3]
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert {tensor.dtype for tensor in state.values()} == {torch.bfloat16}
