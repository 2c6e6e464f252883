"""compare_runs on hand-made runs whose numbers can be worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from reprogrid.analysis.attribution import all_sources_setting
from reprogrid.analysis.cells import first_divergent_epoch
from reprogrid.analysis.comparison import compare_runs, write_csv
from reprogrid.analysis.runs import RunResult

LABELS = np.array([0, 1, 2, 3])


def logits_for(predicted) -> np.ndarray:
    """Logits whose argmax is `predicted` (one-hot over four classes)."""
    return np.eye(4)[list(predicted)]


def run(key, weights="w", init="i", fingerprints=("e1", "e2"), loss=0.3, predicted=(0, 1, 2, 3),
        expect=True, seconds=1.0, varied="", weights_path=None):
    setting, libconf, rep = key.split("/")
    logits = None if predicted is None else logits_for(predicted)
    metrics = {"test_loss": loss}
    if logits is not None:
        metrics["test_accuracy"] = float((logits.argmax(axis=1) == LABELS).mean())
    return RunResult(
        key=key, setting=setting, libconf=libconf, replicate=int(rep[1:]), expect_bitwise=expect,
        varied_sources=varied, init_weights=init, weights=weights, predictions=f"p-{weights}",
        fingerprints=list(fingerprints), metrics=metrics, train_seconds=seconds,
        logits=logits, labels=None if logits is None else LABELS, weights_path=weights_path,
    )


def test_first_divergent_epoch():
    a = run("s/l/r1", fingerprints=("x", "y", "z"))
    assert first_divergent_epoch(a, run("s/l/r2", fingerprints=("x", "y", "z"))) is None
    assert first_divergent_epoch(a, run("s/l/r2", fingerprints=("x", "q", "z"))) == 2
    assert first_divergent_epoch(a, run("s/l/r2", init="other", fingerprints=("x", "y", "z"))) == 0


def test_summary_of_a_reproducible_and_a_varying_cell(tmp_path):
    np.save(tmp_path / "a.npy", np.array([0.0, 0.0], dtype=np.float32))
    np.save(tmp_path / "b.npy", np.array([3.0, 4.0], dtype=np.float32))
    runs = [
        run("fixed/a/r1"), run("fixed/a/r2"), run("fixed/a/r3"),
        # accuracies 1.0 and 0.75: predicted (0,1,2,3) and (0,1,2,0)
        run("vary/a/r1", weights="w1", init="i1", expect=False, varied="init", weights_path=tmp_path / "a.npy"),
        run("vary/a/r2", weights="w2", init="i2", predicted=(0, 1, 2, 0), expect=False, varied="init",
            weights_path=tmp_path / "b.npy", seconds=3.0),
    ]
    result = compare_runs(runs)
    fixed, vary = result.summary.iloc[0], result.summary.iloc[1]
    assert (fixed["runs"], fixed["distinct_weights"], fixed["bitwise_reproducible"]) == (3, 1, True)
    # 3 of 3 identical still allows a divergence rate up to 1 - 0.05^(1/3) = 63.2 %
    assert fixed["divergence_rate_upper95"] == pytest.approx(0.6316, abs=1e-4)
    assert pd.isna(result.summary.iloc[1]["divergence_rate_upper95"])  # not bitwise: no streak to bound
    assert fixed["test_accuracy_std"] == 0.0 and pd.isna(fixed["first_divergent_epoch"])
    assert fixed["best_of_2_gain"] == 0.0 and fixed["logit_correlation_mean"] == pytest.approx(1.0)
    assert (vary["distinct_weights"], vary["bitwise_reproducible"]) == (2, False)
    assert vary["test_accuracy_mean"] == pytest.approx(0.875)
    assert vary["test_accuracy_std"] == pytest.approx(np.std([1.0, 0.75], ddof=1))
    assert vary["disagreement_mean"] == 0.25 and vary["first_divergent_epoch"] == 0
    assert vary["weight_distance_mean"] == pytest.approx(5.0)
    # averaged logits of the two: point 3 ties classes 0 and 3, argmax takes 0: accuracy .75
    assert vary["ensemble_gain_mean"] == pytest.approx(0.75 - 0.875)
    assert vary["best_of_2_gain"] == pytest.approx(1.0 - 0.875) and pd.isna(vary["best_of_5_gain"])
    # class 3 is right in one run of two, every other class in both
    assert vary["per_class_gap_max"] == 1.0
    assert vary["independent_errors_std"] == pytest.approx(np.sqrt(0.25) / 4)
    # one run of 1 s, one of 3 s; the reference (first) configuration's median is 1 s
    assert vary["train_seconds_median"] == 2.0 and vary["train_seconds_relative"] == 2.0
    assert len(result.pairs) == 3 + 1


def test_same_weights_as_compares_replicates_across_library_configurations():
    runs = [run("s/a/r1", weights="x1"), run("s/a/r2", weights="x2"),
            run("s/b/r1", weights="x1"), run("s/b/r2", weights="x2"),
            run("s/c/r1", weights="x1"), run("s/c/r2", weights="other")]
    result = compare_runs(runs)
    assert list(result.summary["same_weights_as"]) == ["b", "a", ""]
    assert (result.pairs["kind"] == "libconfs").sum() == 2 * 3


def test_cost_of_each_library_configuration_against_the_reference():
    runs = [run("s/fast/r1", seconds=1.0), run("s/fast/r2", seconds=3.0),
            run("s/slow/r1", seconds=8.0), run("s/slow/r2", seconds=8.0)]
    libconfs = compare_runs(runs, reference_libconf="slow").libconfs.set_index("libconf")
    assert libconfs.loc["fast", "relative_to_reference"] == pytest.approx(2.0 / 8.0)
    assert libconfs.loc["slow", "relative_to_reference"] == 1.0
    assert set(libconfs["reference"]) == {"slow"}


def grid_with_sources():
    """One all-sources cell and two single-source cells, under one library configuration,
    plus a deterministic control under two."""
    def cell(setting, varied, predictions, libconf="l"):
        return [run(f"{setting}/{libconf}/r{i + 1}", weights=f"{setting}{libconf}{i}", init=f"{setting}{i}",
                    predicted=p, varied=varied, expect=not varied) for i, p in enumerate(predictions)]
    return (
        cell("all", "init,order", [(0, 1, 2, 3), (0, 1, 0, 0), (0, 0, 0, 3)])
        + cell("init", "init", [(0, 1, 2, 3), (0, 1, 2, 0), (0, 1, 2, 3)])
        + cell("order", "order", [(0, 1, 2, 3)] * 3)
        + [run(f"control/{lc}/r{i}", weights=f"c{lc}{i}", init="c", predicted=p)
           for lc, p in (("l", (0, 1, 2, 3)), ("m", (0, 1, 2, 0))) for i in (1, 2)]
    )


def test_attribution_sets_each_source_against_all_sources():
    runs = grid_with_sources()
    result = compare_runs(runs, reference_libconf="l")
    rows = result.attribution.set_index("source")
    assert list(result.attribution["reference_setting"].unique()) == ["all"]
    # accuracies: all (1, .5, .5) SD .288675; init (1, .75, 1) SD .144338: a ratio of one half
    assert rows.loc["init", "std_ratio"] == pytest.approx(0.5)
    assert rows.loc["order", "std_ratio"] == 0.0
    assert rows.loc["init", "std_ratio_ci_low"] <= 0.5 <= rows.loc["init", "std_ratio_ci_high"]
    # disagreement: all, pairs (.5, .5, .5) mean .5; init (.25, 0, .25) mean 1/6
    assert rows.loc["init", "disagreement_mean"] == pytest.approx(1 / 6)
    assert rows.loc["init", "disagreement_ratio"] == pytest.approx(1 / 3)
    # the control under `m` predicts point 3 differently from the same seeds under `l`
    implementation = rows.loc["implementation: m vs l"]
    assert implementation["libconf"] == "m" and implementation["disagreement_mean"] == 0.25
    # paired across configurations: each replicate's accuracy moves by .25 (one point in
    # four), the SD two independent runs that far apart would have: .25 / sqrt(2)
    assert implementation["runs"] == 2
    assert implementation["test_accuracy_std"] == pytest.approx(0.25 / np.sqrt(2))
    assert implementation["std_ratio"] == pytest.approx(0.25 / np.sqrt(2) / 0.288675, rel=1e-5)
    assert pd.isna(implementation["std_ratio_ci_low"])  # two pairs: a ratio, no interval


def test_no_two_titles_or_labels_of_a_report_figure_overlap(tmp_path, monkeypatch):
    from reprogrid.report import figures as report

    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig))
    comparison = compare_runs(grid_with_sources(), reference_libconf="l")
    # long names squeeze the axes next to their labels, where titles used to collide
    comparison.attribution["libconf"] = "deterministic_algorithms_with_two_threads"
    report.write_figures(comparison, tmp_path)
    assert len(figures) == 5  # the variants figure: a placeholder without variants
    for fig in figures:
        renderer = fig.canvas.get_renderer()
        texts = [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)] + [fig._suptitle]
        texts = [t for t in texts if t is not None and t.get_text()]
        boxes = [t.get_window_extent(renderer) for t in texts]
        for i, box in enumerate(boxes):
            assert not any(box.overlaps(other) for other in boxes[i + 1:]), [t.get_text() for t in texts]


def test_the_all_sources_setting_need_not_vary_the_one_ulp_nudge():
    runs = grid_with_sources() + [run(f"ulp/l/r{i}", weights=f"u{i}", init=f"u{i}", varied="ulp") for i in (1, 2)]
    result = compare_runs(runs)
    assert all_sources_setting(result.cells, "l") == "all"
    assert result.attribution.set_index("source").loc["ulp", "std_ratio"] == 0.0


def test_models_without_classes_leave_accuracy_and_disagreement_empty(tmp_path):
    runs = [run("s/l/r1", predicted=None, loss=1.0), run("s/l/r2", predicted=None, weights="v", loss=2.0)]
    summary = compare_runs(runs).summary
    row = summary.iloc[0]
    assert pd.isna(row["test_accuracy_mean"]) and pd.isna(row["disagreement_mean"])
    assert pd.isna(row["per_class_gap_max"]) and pd.isna(row["independent_errors_std"])
    assert row["test_loss_mean"] == 1.5
    assert row["best_of_2_gain"] == pytest.approx(0.5)  # by lowest loss: 1.0 against a mean of 1.5
    write_csv(summary, tmp_path / "summary.csv")
    text = (tmp_path / "summary.csv").read_text().splitlines()[1]
    assert text.startswith("s,l,2,true,2,2,false,,,,,1.5,")


def test_a_single_run_cannot_show_reproducibility():
    result = compare_runs([run("s/l/r1")])
    assert pd.isna(result.summary.iloc[0]["bitwise_reproducible"]) and result.pairs.empty
    assert result.attribution.empty


@pytest.mark.parametrize("n, bound", [(5, 0.451), (10, 0.259), (30, 0.0950)])
def test_the_bound_on_a_bitwise_cells_divergence_rate(n, bound):
    from reprogrid.analysis.summary import divergence_rate_upper95

    assert divergence_rate_upper95(n) == pytest.approx(bound, abs=5e-4)


def test_the_implementation_row_counts_a_deterministic_pair_once_and_prefers_independent_pairs():
    def cell(setting, libconf, weights, predictions, varied=""):
        return [run(f"{setting}/{libconf}/r{i + 1}", weights=w, init=f"{setting}{i}", predicted=p, varied=varied)
                for i, (w, p) in enumerate(zip(weights, predictions))]
    everything = [(0, 1, 2, 3), (0, 1, 0, 0), (0, 0, 0, 3)]
    control = (cell("control", "l", ["cl"] * 3, [(0, 1, 2, 3)] * 3)  # every source fixed: one run, three times
               + cell("control", "m", ["cm"] * 3, [(0, 1, 2, 0)] * 3)
               + cell("all", "l", ["a0", "a1", "a2"], everything, varied="init,order"))
    implementation = compare_runs(control, reference_libconf="l").attribution.set_index("source").loc[
        "implementation: m vs l"]
    assert implementation["setting"] == "control" and implementation["runs"] == 1  # one pair, not three
    assert pd.isna(implementation["std_ratio_ci_low"])
    # with all sources under both configurations, their replicates are the pairs: independent runs
    varied = control + cell("all", "m", ["b0", "b1", "b2"], [(0, 1, 2, 0), (0, 1, 0, 0), (0, 0, 0, 3)],
                            varied="init,order")
    implementation = compare_runs(varied, reference_libconf="l").attribution.set_index("source").loc[
        "implementation: m vs l"]
    assert implementation["setting"] == "all" and implementation["runs"] == 3
    # accuracy moves by .25 on the first replicate only: sqrt((.25² / 3) / 2)
    assert implementation["test_accuracy_std"] == pytest.approx(np.sqrt(0.25 ** 2 / 3 / 2))
