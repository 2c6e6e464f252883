"""`reprogrid diverge` of two training.command runs (reprogrid.investigate.command_diverge):
the step, the op and the cause, found by re-running both commands with the probe in the
watch. The runs are made by reprogrid's own command run (run_command_train) and read
back from their sealed files, as compare's `localise` reads them."""

import copy
import json

import pandas as pd
import pytest
from snakemake.utils import validate

from reprogrid import config as cfg
from reprogrid.command.run import run_command_train
from reprogrid.config.seeds import derive_seeds
from reprogrid.investigate.diverge import localise, record_from_files
from reprogrid.record.sealed import write_sealed
from reprogrid.workflow import SCHEMA_FILE

# Written as people write it: a constant seed for the model, then `--seed` for training
# (dropout), and NumPy noise drawn at one late step only.
SCRIPT = """\
import argparse
import numpy as np
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int)
parser.add_argument("--dropout", type=float, default=0.0)
parser.add_argument("--noise-at", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(args.dropout) if args.dropout else
                            torch.nn.Identity(), torch.nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
torch.manual_seed(args.seed)
inputs = torch.linspace(-1, 1, 64).reshape(16, 4)
for step in range(1, 81):
    batch = inputs + float(np.random.normal()) if step == args.noise_at else inputs
    loss = model(batch).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""


def runs(project, arguments: str, setting: dict) -> list[dict]:
    """Two replicates of the script under `setting`, as compare's localise reads them."""
    grid = {"experiment": "diverge", "root_seed": 5, "replicates": 2,
            "training": {"command": f"python train.py --seed {{seed}} {arguments}", "timeout_s": 300},
            "seed_settings": {"s": setting}, "library_configs": {"t1": {"threads": 1}}}
    validate(grid, str(SCHEMA_FILE))
    cfg.check_config(grid)
    records = []
    for replicate in (1, 2):
        run_config = cfg.resolve_run_config(grid, "s", "t1", replicate)
        run_dir = project / "results" / "runs" / run_config["run_key"]
        run_dir.mkdir(parents=True)
        (run_dir / "seeds.json").write_text(json.dumps(
            {"seeds": derive_seeds(grid["root_seed"], run_config["seed_modes"], replicate)}))
        run_command_train(copy.deepcopy(run_config), run_dir / "seeds.json", run_dir / "model.pt",
                          run_dir / "train.json")
        write_sealed(run_dir / "eval.json", {"hashes": {"predictions": "no predictions"}})
        records.append(record_from_files(run_dir))
    return records


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "train.py").write_text(SCRIPT)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dropout_seeded_by_the_varied_script_seed_is_a_random_op_of_torchs_generator(project):
    found = localise(runs(project, "--dropout 0.5", {"script": "vary"}), project / "streams")
    assert (found["step"], found["cause"], found["generator"]) == (1, "random_op", "torch")
    assert found["op"] in ("aten::native_dropout", "aten::bernoulli_") and found["module"] == "Sequential.1"
    assert "seeded from `script`, whose seeds differ" in found["detail"]
    assert len(list((project / "streams").glob("*.ops.json"))) == 2  # each run's op stream, to compare elsewhere


def test_a_late_numpy_draw_between_recorded_steps_is_found_at_its_step(project):
    # from step 65 every second step is recorded: the draw at 71 first shows at 72, re-run finds 71
    records = runs(project, "--noise-at 71", {"script": "fixed"})
    recorded = [step for _, step, _ in records[0]["train"]["fingerprints"]]
    assert 71 not in recorded and 72 in recorded
    found = localise(records, project / "streams")
    assert (found["step"], found["phase"], found["cause"], found["generator"]) == (71, "input", "input", "numpy")
    assert "drawn at train.py:17 by numpy.random.normal" in found["detail"]


def test_runs_that_agree_at_every_step_did_not_diverge(project):
    found = localise(runs(project, "", {"script": "fixed", "numpy": "fixed"}), project / "streams")
    assert found["diverged"] is False and found["cause"] is None


def test_different_initial_weights_are_initialization_without_re_running(project):
    (project / "train.py").write_text(SCRIPT.replace("torch.manual_seed(0)", "torch.manual_seed(args.seed)", 1))
    found = localise(runs(project, "", {"script": "vary"}), project / "streams")
    assert (found["step"], found["cause"], found["generator"]) == (0, "initialization", "torch")
    assert "their `script` seeds differ" in found["detail"]
    assert not (project / "streams").exists()


def test_the_reports_sentence_for_a_command_pair_says_the_step_without_an_epoch():
    # compare's `localise` on command runs: divergence.csv has no epoch (pandas' NA), the report says the step
    from reprogrid.report.lessons import where_they_part

    rows = pd.DataFrame([{"setting": "fixed", "libconf": "t1", "run_a": "fixed/t1/r1", "run_b": "fixed/t1/r2",
                          "diverged": True, "epoch": None, "step": 1, "phase": "input", "op": "aten::lift_fresh",
                          "module": None, "cause": "input", "generator": "numpy", "detail": "from numpy"}]
                        ).astype({"epoch": "Int64", "step": "Int64"})
    [sentence] = where_they_part(rows)
    assert "fixed/t1/r1 and fixed/t1/r2 part at step 1, input at <code>aten::lift_fresh</code>: <b>input</b>" in sentence
