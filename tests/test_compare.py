import numpy as np
import pandas as pd
import pytest

from reprogrid.compare import RunResult, compare_runs, disagreement, first_divergent_epoch, write_csv


def run(key, weights="w", init="i", fingerprints=("e1", "e2"), accuracy=0.9, loss=0.3,
        predicted=(0, 1, 2, 3), predictions=None, expect=True, seconds=1.0):
    setting, libconf, rep = key.split("/")
    return RunResult(
        key=key, setting=setting, libconf=libconf, replicate=int(rep[1:]), expect_bitwise=expect,
        varied_sources="", init_weights=init, weights=weights,
        predictions=predictions or f"p-{weights}", fingerprints=list(fingerprints),
        metrics={"test_accuracy": accuracy, "test_loss": loss} if predicted is not None else {"test_loss": loss},
        train_seconds=seconds,
        predicted_class=None if predicted is None else np.array(predicted),
    )


def test_first_divergent_epoch():
    a = run("s/l/r1", fingerprints=("x", "y", "z"))
    assert first_divergent_epoch(a, run("s/l/r2", fingerprints=("x", "y", "z"))) is None
    assert first_divergent_epoch(a, run("s/l/r2", fingerprints=("x", "q", "z"))) == 2
    assert first_divergent_epoch(a, run("s/l/r2", init="other", fingerprints=("x", "y", "z"))) == 0


def test_disagreement_is_the_share_of_points_predicted_differently():
    assert disagreement(run("s/l/r1", predicted=(0, 1, 2, 3)), run("s/l/r2", predicted=(0, 1, 0, 0))) == 0.5
    assert disagreement(run("s/l/r1", predicted=None), run("s/l/r2", predicted=None)) is None


def test_summary_of_a_reproducible_and_a_varying_cell():
    runs = [
        run("fixed/a/r1"), run("fixed/a/r2"), run("fixed/a/r3"),
        run("vary/a/r1", weights="w1", init="i1", accuracy=0.8, predicted=(0, 1, 2, 3), expect=False),
        run("vary/a/r2", weights="w2", init="i2", accuracy=0.9, predicted=(0, 1, 2, 0), expect=False),
    ]
    summary, pairs = compare_runs(runs)
    fixed, vary = summary.iloc[0], summary.iloc[1]
    assert (fixed["runs"], fixed["distinct_weights"], fixed["bitwise_reproducible"]) == (3, 1, True)
    assert fixed["test_accuracy_std"] == 0.0 and pd.isna(fixed["first_divergent_epoch"])
    assert (vary["distinct_weights"], vary["bitwise_reproducible"]) == (2, False)
    assert vary["test_accuracy_mean"] == pytest.approx(0.85)
    assert vary["test_accuracy_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert vary["disagreement_mean"] == 0.25 and vary["first_divergent_epoch"] == 0
    assert len(pairs) == 3 + 1


def test_same_weights_as_compares_replicates_across_library_configurations():
    runs = [run("s/a/r1", weights="x1"), run("s/a/r2", weights="x2"),
            run("s/b/r1", weights="x1"), run("s/b/r2", weights="x2"),
            run("s/c/r1", weights="x1"), run("s/c/r2", weights="other")]
    summary, pairs = compare_runs(runs)
    assert list(summary["same_weights_as"]) == ["b", "a", ""]
    assert (pairs["kind"] == "libconfs").sum() == 2 * 3


def test_models_without_classes_leave_accuracy_and_disagreement_empty(tmp_path):
    runs = [run("s/l/r1", predicted=None, loss=1.0), run("s/l/r2", predicted=None, weights="v", loss=2.0)]
    summary, _ = compare_runs(runs)
    row = summary.iloc[0]
    assert pd.isna(row["test_accuracy_mean"]) and pd.isna(row["disagreement_mean"])
    assert row["test_loss_mean"] == 1.5
    write_csv(summary, tmp_path / "summary.csv")
    text = (tmp_path / "summary.csv").read_text().splitlines()[1]
    assert text.startswith("s,l,2,true,2,2,false,,,,,1.5,")


def test_a_single_run_cannot_show_reproducibility():
    summary, pairs = compare_runs([run("s/l/r1")])
    assert pd.isna(summary.iloc[0]["bitwise_reproducible"]) and pairs.empty
