"""A quick run of the benchmark scripts, so that they keep working (numbers are not
asserted here: they belong to benchmarks/RESULTS.md, measured on an idle machine)."""

import json
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, tiny_config

pytestmark = pytest.mark.workflow


def run_script(*args) -> dict:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_overhead_benchmark_runs_the_same_runs_both_ways(tmp_path):
    config = tiny_config(seed_settings={"fixed": {}}, library_configs={"t1": {}}, training={"epochs": 3})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = run_script("benchmarks/overhead.py", str(tmp_path / "tiny.yaml"), "--cores", "2")
    workflow = result["workflow"]["cores2"]
    assert result["runs"] == workflow["runs"] == 2
    # the plain loop and the workflow train the same model to a similar accuracy (chance: 0.1)
    assert min(result["test_accuracy_mean"], workflow["test_accuracy_mean"]) > 0.5
    assert len(result["bare_seconds_each"]) == len(workflow["seconds_each"]) == 2  # a b b a


def test_own_loop_benchmark_times_the_same_loop_both_ways():
    result = run_script("benchmarks/own_loop.py", "--runs", "1", "--epochs", "2", "--rounds", "1")
    assert {side: len(times) for side, times in result["loop_seconds_each"].items()} == {"plain": 2, "reprogrid": 2}
    assert all(seconds > 0 for times in result["loop_seconds_each"].values() for seconds in times)
    # the medians are rounded to the ms in the JSON, the ratio is not taken from them
    assert result["loop_ratio"] == pytest.approx(
        result["loop_seconds_median"]["reprogrid"] / result["loop_seconds_median"]["plain"], rel=0.02)


def test_tax_split_benchmark_splits_a_grid_into_fixed_and_per_run_parts():
    result = run_script("benchmarks/tax_split.py", "--runs", "1", "2")
    assert {key: len(times) for key, times in result["seconds_each"].items()} == {"1": 2, "2": 2}
    phases = result["phases_of_large"]
    assert set(phases) == {"start_up", "run_jobs", "compare", "audit_report_exit"}
    assert all(seconds >= 0 for seconds in phases.values()), phases
    assert sum(phases.values()) == pytest.approx(sum(result["seconds_each"]["2"]) / 2, abs=0.05)


def test_loop_split_benchmark_times_every_part():
    result = run_script("benchmarks/loop_split.py", "--epochs", "2")
    assert result["batches_per_epoch"] == 45  # 1,438 training digits in batches of 32
    assert all(ms > 0 for ms in result["median_ms_per_epoch"].values())


def test_execute_scale_benchmark_runs_the_grid_and_both_schedulers():
    result = run_script("benchmarks/execute_scale.py", "--runs", "8", "--trivial-jobs", "20")
    assert result["grid"]["runs"] == 8 and result["grid"]["jobs"] == 26
    assert 0 < result["grid"]["snakemake_share_of_wall"] < 1
    assert {"ilp", "greedy"} <= set(result["schedulers"]) and result["schedulers"]["jobs"] == 20


def test_scale_benchmark_plans_and_compares(tmp_path):
    result = run_script("benchmarks/scale.py", "--runs", "100")
    assert result["dry_run"]["jobs"] == 303
    assert result["dry_run"]["workflow"]["seconds"] > 0 and result["dry_run"]["bare_snakefile"]["peak_mib"] > 0
    assert result["compare"]["runs"] == 100 and result["compare"]["pairs_csv_mib"] >= 0
    assert_split(result["compare"]["seconds_by_phase"], result["compare"]["seconds"],
                 ["reading the runs' files", "cell statistics (summary.csv)", "report.html", "figures"])


def assert_split(by_phase: dict, wall: float, spent_in: list[str]) -> None:
    """A phase split accounts for the process's wall time, and the named phases were entered."""
    assert all(seconds >= 0 for seconds in by_phase.values()), by_phase
    assert abs(sum(by_phase.values()) - wall) <= 0.01 * len(by_phase), (by_phase, wall)
    assert all(by_phase[phase] > 0 for phase in spent_in), by_phase


def test_audit_benchmark_finds_its_planted_violation():
    result = run_script("benchmarks/audit_scale.py", "--runs", "200")
    assert result["runs"] == 200 and result["audit"]["exit_status"] == 1
    assert result["audit"]["violations"] == [
        "s0 × l0 was predicted bitwise reproducible, but s0/l0/r2 (from epoch 4) differ from s0/l0/r1"]
    again = result["audit_again_by_phase"]
    assert_split(again["seconds_by_phase"], again["seconds"],
                 ["reading every run's record (params, tags, metrics)", "the checks",
                  "fetching epoch fingerprints (train.json artifacts)"])


def test_the_planning_estimate_is_the_committed_dry_run():
    """The large-grid warning's per-job cost is scale.json's measurement, not a remembered one."""
    from reprogrid.config.checks import PLAN_MIB_PER_JOB, PLAN_SECONDS_PER_JOB

    dry_run = json.loads((REPO / "benchmarks" / "results" / "scale.json").read_text())["dry_run"]
    assert PLAN_SECONDS_PER_JOB == pytest.approx(dry_run["workflow"]["seconds"] / dry_run["jobs"], rel=1e-9)
    assert PLAN_MIB_PER_JOB == pytest.approx(dry_run["workflow"]["peak_mib"] / dry_run["jobs"], rel=1e-9)
