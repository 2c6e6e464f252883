"""`reprogrid diverge` on real runs of a real grid: the JSON names the epoch, the step,
the phase, the operation and the cause."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import grid_runs, run_snakemake, tiny_config

pytestmark = pytest.mark.workflow
REPROGRID = Path(sys.executable).with_name("reprogrid")
CONFIG = tiny_config(
    seed_settings={"all_fixed": {}, "init": {"init": "vary"}, "dropout": {"dropout": "vary"}},
    library_configs={"t1": {"threads": 1}, "t2": {"threads": 2}, "numpy_unseeded": {"seed_numpy_global": False}},
    training={"epochs": 3, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
    reference_libconf="t1", localise=True,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("diverge")
    done = run_snakemake(workdir, "--cores", "2", config=CONFIG)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir, {r.data.tags["reprogrid.run_key"]: r for r in grid_runs(workdir)}


def diverge(runs, key_a, key_b):
    workdir, by_key = runs
    out = workdir / f"{key_a}-{key_b}.json".replace("/", "_")
    done = subprocess.run([str(REPROGRID), "diverge", by_key[key_a].info.run_id, by_key[key_b].info.run_id,
                           "--json", str(out)], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    found = json.loads(out.read_text())
    assert done.returncode == (1 if found["diverged"] else 0)
    return found


def test_a_thread_count_that_changes_the_bits_is_an_implementation_difference_at_an_op(runs):
    _, by_key = runs
    a, b = by_key["all_fixed/t1/r1"], by_key["all_fixed/t2/r1"]
    if a.data.tags["reprogrid.hash.weights"] == b.data.tags["reprogrid.hash.weights"]:
        pytest.skip("on this CPU, 1 and 2 threads give this model the same bits: nothing to localise")
    found = diverge(runs, "all_fixed/t1/r1", "all_fixed/t2/r1")
    assert found["diverged"] and found["cause"] == "implementation" and found["epoch"] >= 1
    assert found["op"].startswith("aten::") and found["phase"] in ("forward", "backward", "optimizer")
    if found["phase"] in ("forward", "backward"):
        assert found["module"]


def test_an_unseeded_numpy_generator_is_named_as_the_input_that_differs(runs):
    found = diverge(runs, "all_fixed/numpy_unseeded/r1", "all_fixed/numpy_unseeded/r2")
    assert found["diverged"] and found["cause"] == "input" and found["generator"] == "numpy"
    assert (found["epoch"], found["step"], found["phase"]) == (1, 1, "input")


def test_varied_initialisation_parts_runs_at_epoch_0(runs):
    found = diverge(runs, "init/t1/r1", "init/t1/r2")
    assert found["diverged"] and found["cause"] == "initialization" and found["epoch"] == 0
    assert found["generator"] == "init"


def test_varied_dropout_is_a_random_op_in_forward(runs):
    found = diverge(runs, "dropout/t1/r1", "dropout/t1/r2")
    assert found["diverged"] and found["cause"] == "random_op" and found["phase"] == "forward"
    assert (found["epoch"], found["step"]) == (1, 1)
    assert found["op"] in ("aten::native_dropout", "aten::bernoulli_", "aten::dropout") and found["module"]


def test_bitwise_replicates_do_not_diverge(runs):
    found = diverge(runs, "all_fixed/t1/r1", "all_fixed/t1/r2")
    assert found["diverged"] is False and found["cause"] is None


def test_an_unknown_run_exits_2_with_one_line(runs):
    workdir, by_key = runs
    done = subprocess.run([str(REPROGRID), "diverge", "0123456789abcdef0123456789abcdef",
                           by_key["all_fixed/t1/r1"].info.run_id], cwd=workdir, capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_compare_localises_one_pair_per_differing_cell_and_the_report_says_why(runs):
    workdir, by_key = runs
    with open(workdir / "results" / "compare" / "divergence.csv") as handle:
        rows = {(r["setting"], r["libconf"]): r for r in csv.DictReader(handle)}
    assert {cell: rows[cell]["cause"] for cell in rows if cell[1] != "t2"} == {
        ("all_fixed", "numpy_unseeded"): "input", ("init", "numpy_unseeded"): "initialization",
        ("init", "t1"): "initialization", ("dropout", "numpy_unseeded"): "input", ("dropout", "t1"): "random_op"}
    assert (rows[("dropout", "t1")]["run_a"], rows[("dropout", "t1")]["run_b"]) == ("dropout/t1/r1", "dropout/t1/r2")
    if by_key["all_fixed/t1/r1"].data.tags["reprogrid.hash.weights"] != \
            by_key["all_fixed/t2/r1"].data.tags["reprogrid.hash.weights"]:  # this CPU: threads change the bits
        assert rows[("all_fixed", "t2")]["cause"] == "implementation"
        assert (rows[("all_fixed", "t2")]["run_a"], rows[("all_fixed", "t2")]["run_b"]) == \
            ("all_fixed/t1/r1", "all_fixed/t2/r1")
    report = (workdir / "results" / "compare" / "report.html").read_text()
    assert "<b>dropout × t1</b>: dropout/t1/r1 and dropout/t1/r2 part at epoch 1, step 1, forward at " \
           "<code>aten::bernoulli_</code> in MLP.2: <b>random_op</b>." in report
