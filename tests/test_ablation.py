"""The paper's protocol on a tiny grid, run for real: every number in summary.csv is
recomputed here from the run files alone (plain NumPy, not reprogrid.analysis.stats), the
attribution table names each source, and both reports carry their figures."""

import base64
import csv
import itertools
import json
import re
import zipfile

import numpy as np
import pytest

from conftest import run_snakemake, tiny_config

pytestmark = pytest.mark.workflow

SETTINGS = {"control": {}, "init": {"init": "vary"}, "order": {"order": "vary"},
            "all": {"init": "vary", "order": "vary", "dropout": "vary"}}
CELLS = [[s, "t1"] for s in SETTINGS] + [["control", "t2"]]
EXPERIMENT = "ablation <b>test</b> & co"  # must come out escaped in the report


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ablation")
    config = tiny_config(
        experiment=EXPERIMENT, replicates=3, seed_settings=SETTINGS,
        library_configs={"t1": {"threads": 1}, "t2": {"threads": 2}}, cells=CELLS, reference_libconf="t1",
    )
    done = run_snakemake(workdir, "--cores", "2", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def read_csv(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def load_cell(workdir, setting, libconf):
    runs = []
    for run_dir in sorted((workdir / "results" / "runs" / setting / libconf).iterdir()):
        with np.load(run_dir / "predictions.npz") as stored:
            runs.append({
                "train": json.loads((run_dir / "train.json").read_text()),
                "eval": json.loads((run_dir / "eval.json").read_text()),
                "logits": stored["logits"], "labels": stored["labels"],
                "weights": np.load(run_dir / "weights.npy"),
            })
    return runs


def recomputed(runs) -> dict:
    """The summary's numbers, from the files, by the definitions in the README."""
    labels = runs[0]["labels"]
    logits = [r["logits"].astype(np.float64) for r in runs]
    predicted = [values.argmax(axis=1) for values in logits]
    accuracy = np.array([(p == labels).mean() for p in predicted])
    loss = np.array([r["eval"]["metrics"]["test_loss"] for r in runs])
    pairs = list(itertools.combinations(range(len(runs)), 2))
    classes = np.unique(labels)
    per_class = np.array([[(p[labels == c] == c).mean() for c in classes] for p in predicted])
    error_rate = np.mean([p != labels for p in predicted], axis=0)
    values = {
        "test_accuracy_mean": accuracy.mean(), "test_accuracy_std": np.std(accuracy, ddof=1),
        "test_accuracy_min": accuracy.min(), "test_accuracy_max": accuracy.max(),
        "test_loss_mean": loss.mean(), "test_loss_std": np.std(loss, ddof=1),
        "disagreement_mean": np.mean([(predicted[a] != predicted[b]).mean() for a, b in pairs]),
        "logit_correlation_mean": np.mean([np.corrcoef(logits[a].ravel(), logits[b].ravel())[0, 1]
                                           for a, b in pairs]),
        "ensemble_gain_mean": np.mean([(((logits[a] + logits[b]) / 2).argmax(axis=1) == labels).mean()
                                       - (accuracy[a] + accuracy[b]) / 2 for a, b in pairs]),
        "weight_distance_mean": np.mean([np.linalg.norm(runs[a]["weights"].astype(np.float64)
                                                        - runs[b]["weights"]) for a, b in pairs]),
        "per_class_accuracy_std_mean": np.std(per_class, axis=0, ddof=1).mean(),
        "per_class_accuracy_std_max": np.std(per_class, axis=0, ddof=1).max(),
        "per_class_gap_max": (per_class.max(axis=0) - per_class.min(axis=0)).max(),
        "independent_errors_std": np.sqrt((error_rate * (1 - error_rate)).sum()) / labels.size,
        "best_of_2_gain": np.mean([max(accuracy[a], accuracy[b]) for a, b in pairs]) - accuracy.mean(),
        "train_seconds_median": np.median([r["train"]["train_seconds"] for r in runs]),
    }
    return values


def test_every_summary_number_is_recomputed_from_the_run_files(ablation):
    summary = read_csv(ablation / "results" / "compare" / "summary.csv")
    assert [[row["setting"], row["libconf"]] for row in summary] == CELLS
    for row in summary:
        runs = load_cell(ablation, row["setting"], row["libconf"])
        assert int(row["runs"]) == len(runs) == 3
        for column, value in recomputed(runs).items():
            assert float(row[column]) == pytest.approx(value, abs=1e-9), (row["setting"], column)
        assert int(row["distinct_weights"]) == len({r["train"]["hashes"]["weights"] for r in runs})
        low, high = float(row["test_accuracy_std_ci_low"]), float(row["test_accuracy_std_ci_high"])
        assert 0.0 <= low <= high
        assert row["best_of_5_gain"] == "" and row["best_of_10_gain"] == ""  # 3 runs do not allow them
    control, init = summary[0], summary[1]
    assert control["bitwise_reproducible"] == "true" and float(control["test_accuracy_std"]) == 0.0
    assert init["bitwise_reproducible"] == "false" and init["first_divergent_epoch"] == "0"
    assert summary[2]["first_divergent_epoch"] == "1"  # the order of batches parts runs in epoch 1


def test_attribution_sets_each_source_and_the_implementation_against_all_sources(ablation):
    rows = {row["source"]: row for row in read_csv(ablation / "results" / "compare" / "attribution.csv")}
    assert set(rows) == {"init", "order", "implementation: t2 vs t1"}
    summary = {(r["setting"], r["libconf"]): r for r in read_csv(ablation / "results" / "compare" / "summary.csv")}
    all_std = float(summary[("all", "t1")]["test_accuracy_std"])
    for source in ("init", "order"):
        row = rows[source]
        assert row["reference_setting"] == "all"
        own_std = float(summary[(source, "t1")]["test_accuracy_std"])
        assert float(row["std_ratio"]) == pytest.approx(own_std / all_std)
        # the F interval of an SD ratio holds at any n; a bootstrap of three runs would not
        assert row["std_ratio_ci_low"] != "" and row["disagreement_ratio_ci_high"] == ""
    implementation = rows["implementation: t2 vs t1"]
    assert (implementation["libconf"], implementation["setting"]) == ("t2", "control")
    assert float(implementation["test_accuracy_std"]) == 0.0  # the control reproduces under both
    libconfs = {r["libconf"]: r for r in read_csv(ablation / "results" / "compare" / "libconfs.csv")}
    assert libconfs["t1"]["relative_to_reference"] == "1.0" and libconfs["t2"]["reference"] == "t1"


def test_the_report_is_self_contained_escaped_and_shows_its_figures(ablation):
    page = (ablation / "results" / "compare" / "report.html").read_text()
    assert EXPERIMENT not in page and "ablation &lt;b&gt;test&lt;/b&gt; &amp; co" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4
    assert all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    for heading in ("Verdicts", "Which source matters", "Every run", "Where runs disagree", "Cost of determinism"):
        assert heading in page
    assert "http://" not in page and "https://" not in page  # nothing fetched when opened


def test_snakemake_report_holds_the_figures_with_their_captions(ablation):
    done = run_snakemake(ablation, "--report", "report.zip", "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    with zipfile.ZipFile(ablation / "report.zip") as archive:
        names = archive.namelist()
        pages = "".join(archive.read(n).decode("utf-8", "replace") for n in names if n.endswith((".html", ".js")))
    for figure in ("attribution", "accuracy", "disagreement", "cost"):
        assert any(n.endswith(f"/{figure}.png") for n in names), figure
    assert "relative to the cell that varies all of them" in pages  # attribution.rst's caption


def test_the_report_opens_in_a_browser_with_its_figures(ablation):
    from browser import browser_page

    with browser_page() as page:
        page.goto((ablation / "results" / "compare" / "report.html").as_uri())
        page.wait_for_load_state("load")
        assert page.title() == f"reprogrid: {EXPERIMENT}"  # escaped in the source, shown as written
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        assert len(images) == 4 and all(complete and width > 300 for _, complete, width in images), images
        assert page.locator("h2").count() == 6
        rows = page.locator("table").first.locator("tbody tr")
        assert rows.count() == len(CELLS)
