"""The audit's checks on hand-made run records (no store needed)."""

import pytest

from reprogrid.analysis.divergence import first_divergent_epoch
from reprogrid.config import SOURCES
from reprogrid.investigate.audit_view import render
from reprogrid.investigate.grid_audit import RunRecord, audit, current_runs

GRID = {"cells": [["fixed", "t1"], ["vary", "t1"]], "replicates": 2}
FINGERPRINTS = {}


def record(key, run_id=None, status="FINISHED", start=1, kind="run", weights="w", predictions="p",
           init="i", code="c", env="e", library=None, data="d", expect=True, expect_rerun=True, epochs=("e1", "e2"),
           split_seed="5", **tag_changes):
    setting, libconf, replicate = key.split("/")
    run_id = run_id or f"{key}-{start}-{kind}"
    FINGERPRINTS[run_id] = list(epochs)
    tags = {"reprogrid.kind": kind, "reprogrid.run_key": key, "reprogrid.setting": setting,
            "reprogrid.libconf": libconf, "reprogrid.replicate": replicate[1:],
            "reprogrid.expect_bitwise": str(expect).lower(),
            "reprogrid.expect_rerun_bitwise": str(expect_rerun).lower(),
            "reprogrid.hash.weights": weights, "reprogrid.hash.predictions": predictions,
            "reprogrid.hash.init_weights": init, "reprogrid.hash.code": code, "reprogrid.hash.env": env,
            "reprogrid.hash.library": library or f"lib-{libconf}",
            "reprogrid.hash.data": data, "reprogrid.hash.config": f"cfg-{key}"} | tag_changes
    params = {f"seed.{s}": "1" for s in SOURCES} | {"seed.split": split_seed, "dataset.name": "digits"}
    return RunRecord(run_id, status, start, tags, params)


def healthy():
    return [record("fixed/t1/r1"), record("fixed/t1/r2"),
            record("vary/t1/r1", weights="a", predictions="pa", init="ia", expect=False),
            record("vary/t1/r2", weights="b", predictions="pb", init="ib", expect=False)]


def checks(report):
    return sorted(v["check"] for v in report.violations)


def test_a_healthy_grid_passes():
    report = audit("x", healthy(), GRID, FINGERPRINTS.get)
    assert report.ok, report.violations
    assert [c["verdict"] for c in report.cells] == ["bitwise reproducible", "NOT bitwise reproducible, as predicted"]
    assert "OK" in render(report, "sqlite:///x.db")


def test_missing_and_running_runs_are_violations():
    runs = healthy()[:3] + [record("vary/t1/r2", status="RUNNING", expect=False)]
    report = audit("x", runs, GRID, FINGERPRINTS.get)
    assert checks(report) == ["missing", "running"]
    assert "vary/t1/r2: no finished run (only RUNNING attempts)" in report.violations[0]["message"]


def test_a_record_without_a_hash_or_seed_is_incomplete():
    runs = healthy()
    del runs[0].tags["reprogrid.hash.env"]
    del runs[1].params["seed.order"]
    report = audit("x", runs, GRID, FINGERPRINTS.get)
    assert checks(report) == ["incomplete", "incomplete"]
    assert "reprogrid.hash.env" in report.violations[0]["message"]
    assert "seed.order" in report.violations[1]["message"]


def test_a_predicted_bitwise_cell_that_differs_names_the_key_and_the_epoch():
    runs = healthy()
    runs[1] = record("fixed/t1/r2", weights="other", predictions="p2", epochs=("e1", "changed"))
    report = audit("x", runs, GRID, FINGERPRINTS.get)
    assert checks(report) == ["not_bitwise"]
    violation = report.violations[0]
    assert violation["keys"] == ["fixed/t1/r2"] and "from epoch 2" in violation["message"]


def test_the_latest_finished_attempt_counts_and_attempts_must_agree():
    runs = healthy() + [record("fixed/t1/r1", start=5, weights="again", epochs=("x", "y"))]
    assert current_runs(runs)["fixed/t1/r1"].start_time == 5
    report = audit("x", runs, GRID, FINGERPRINTS.get)
    assert "attempts_disagree" in checks(report)


def test_a_replay_that_agrees_is_fine_and_unseeded_reruns_may_differ():
    runs = healthy() + [record("fixed/t1/r1", start=9, kind="replay")]
    assert audit("x", runs, GRID, FINGERPRINTS.get).ok
    unseeded = healthy()
    unseeded[2:] = [record("vary/t1/r1", weights="a", expect=False, expect_rerun=False),
                    record("vary/t1/r2", weights="b", expect=False, expect_rerun=False),
                    record("vary/t1/r1", start=7, weights="c", expect=False, expect_rerun=False)]
    report = audit("x", unseeded, GRID, FINGERPRINTS.get)
    assert report.ok and any("as predicted" in note for note in report.notes)


@pytest.mark.parametrize("change, what", [
    ({"code": "c2"}, "code"),
    ({"data": "d2"}, "data"),
    ({"env": "another-machine"}, "env"),
    ({"library": "lib-t1-with-other-threads"}, "library"),
])
def test_drift_of_code_or_data_is_named(change, what):
    runs = healthy()
    runs[3] = record("vary/t1/r2", weights="b", predictions="pb", init="ib", expect=False, **change)
    report = audit("x", runs, GRID, FINGERPRINTS.get)
    assert checks(report) == ["drift"] and f"2 different {what} hashes" in report.violations[0]["message"]


def test_library_state_and_data_may_differ_where_they_should():
    runs = [record("fixed/t1/r1"), record("fixed/t2/r1"),
            record("split/t1/r1", data="d-other", split_seed="9", expect=False)]
    grid = {"cells": [["fixed", "t1"], ["fixed", "t2"], ["split", "t1"]], "replicates": 1}
    assert audit("x", runs, grid, FINGERPRINTS.get).ok


def test_without_a_recorded_grid_the_audit_says_so():
    report = audit("x", healthy(), None, FINGERPRINTS.get)
    assert report.ok and any("no grid recorded" in note for note in report.notes)


def test_first_divergent_epoch():
    assert first_divergent_epoch("i", ["a", "b"], "i", ["a", "b"]) is None
    assert first_divergent_epoch("i", ["a", "b"], "i", ["a", "c"]) == 2
    assert first_divergent_epoch("i", ["a"], "i", ["a", "b"]) == 2
    assert first_divergent_epoch("i", ["a"], "j", ["a"]) == 0


def test_the_audit_names_where_runs_were_recorded_and_flags_a_mix():
    one = audit("x", healthy(), GRID, FINGERPRINTS.get)
    assert one.origins == {"(not recorded)": 4} and not any("MIXED" in n for n in one.notes)
    runs = [record("fixed/t1/r1", **{"reprogrid.workdir": "/home/a/grid"}),
            record("fixed/t1/r2", **{"reprogrid.workdir": "/home/a/grid"}),
            record("vary/t1/r1", weights="a", predictions="pa", init="ia", expect=False,
                   **{"reprogrid.workdir": "/scratch/b/grid"}),
            record("vary/t1/r2", weights="b", predictions="pb", init="ib", expect=False,
                   **{"reprogrid.workdir": "/home/a/grid"})]
    mixed = audit("x", runs, GRID, FINGERPRINTS.get)
    assert mixed.origins == {"/home/a/grid": 3, "/scratch/b/grid": 1}
    assert "note: MIXED: the current runs were recorded from 2 working directories, which this audit merges " \
           "as one grid: /home/a/grid (3 runs); /scratch/b/grid (1 run)" in render(mixed, "sqlite:///x.db")
    single = audit("x", runs[:2], {"cells": [["fixed", "t1"]], "replicates": 2}, FINGERPRINTS.get)
    assert "recorded from: /home/a/grid" in render(single, "sqlite:///x.db")


def test_a_run_predicted_bitwise_whose_trace_shows_an_unseeded_generator_is_flagged():
    runs = healthy()
    runs[0].tags["reprogrid.rng.train"] = "numpy,torch"
    runs[0].params["lib.seed_numpy_global"] = "false"
    runs[1].tags["reprogrid.rng.train"] = "numpy,torch"  # seeded (no false): fine
    report = audit("x", runs, GRID, FINGERPRINTS.get)
    assert checks(report) == ["trace"]
    assert "fixed/t1/r1: predicted bitwise, but its training drew from numpy" in report.violations[0]["message"]


def test_the_current_run_is_the_one_sealed_last():
    """`--forcerun evaluate` records a run anew whose training began when the older
    record's did: the record sealed last is the one that counts."""
    older, newer = record("fixed/t1/r1", run_id="old", start=5), record("fixed/t1/r1", run_id="new", start=5)
    older.end_time, newer.end_time = 7, 9
    assert current_runs([newer, older])["fixed/t1/r1"].run_id == "new"
    assert current_runs([older, newer])["fixed/t1/r1"].run_id == "new"


def test_a_config_edited_and_rerun_is_not_nondeterminism():
    """The lr changed and the run was rerun: two attempts under different inputs, a note
    naming the key, no violation."""
    runs = healthy()
    edited = [record(f"fixed/t1/r{r}", run_id=f"edited{r}", start=9, weights="w2", predictions="p2",
                     **{"reprogrid.hash.config": f"cfg-edited-{r}"}) for r in (1, 2)]
    for before, after in zip(runs[:2], edited):
        before.params["training.lr"], after.params["training.lr"] = "0.05", "0.1"
    report = audit("x", runs + edited, GRID, FINGERPRINTS.get)
    assert checks(report) == []
    assert any("fixed/t1/r1: 2 attempts under 2 different inputs (config: training.lr 0.05 -> 0.1)" in note
               for note in report.notes), report.notes
