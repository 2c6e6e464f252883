"""The demo grid (config/config.yaml) as the README describes it: its four lessons,
asserted on a real run of the whole grid (about a minute on 2 cores)."""

import csv
import html
import json
import re
import shutil

import pytest

from conftest import REPO, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    shutil.copy(REPO / "config" / "config.yaml", workdir / "demo.yaml")
    done = run_snakemake(workdir, "--cores", "2", "--configfile", "demo.yaml", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (workdir / "stdout.txt").write_text(done.stdout)
    return workdir


@pytest.fixture(scope="module")
def demo(demo_dir):
    with open(demo_dir / "results" / "compare" / "summary.csv") as handle:
        return {(r["setting"], r["libconf"]): r for r in csv.DictReader(handle)}


def test_every_source_fixed_is_bitwise_reproducible(demo):
    for libconf in ("t1", "t2"):
        cell = demo[("all_fixed", libconf)]
        assert (cell["bitwise_reproducible"], cell["distinct_weights"], cell["expect_bitwise"]) == \
            ("true", "1", "true"), libconf


def test_a_varied_source_makes_the_runs_differ_from_the_start(demo):
    for setting in ("init", "all_vary"):
        for libconf in ("t1", "t2", "numpy_unseeded"):
            cell = demo[(setting, libconf)]
            assert (cell["distinct_weights"], cell["first_divergent_epoch"]) == ("3", "0"), (setting, libconf)


def test_the_same_seeds_with_two_threads_give_other_weights(demo):
    """Seen on torch's avx2, avx512 and default CPU kernels alike (the convolutions split
    their reductions by thread count)."""
    assert demo[("all_fixed", "t1")]["same_weights_as"] == ""


def test_numpys_generator_left_unseeded_breaks_a_fixed_setting(demo):
    cell = demo[("all_fixed", "numpy_unseeded")]
    assert (cell["expect_bitwise"], cell["distinct_weights"], cell["first_divergent_epoch"]) == ("false", "3", "1")
    assert cell["rng_unseeded"] == "numpy"


def listed_under(report: str, heading: str) -> list[str]:
    """The items of the list that follows `heading` in the report, as text."""
    start = report.index(f"<h3>{heading}</h3>")
    block = report[report.index("<ul>", start):report.index("</ul>", start)]
    return [html.unescape(re.sub("<[^>]+>", "", item)) for item in re.findall(r"<li>(.*?)</li>", block, re.S)]


def test_the_report_leads_with_the_four_lessons_and_keeps_cell_detail_below(demo_dir, demo):
    report = (demo_dir / "results" / "compare" / "report.html").read_text()
    lessons = listed_under(report, "What this grid shows")
    assert len(lessons) < len(demo)  # grouped: fewer sentences than cells
    expected = [
        "Bitwise reproducible: all_fixed × t1, all_fixed × t2:",
        "Varying init makes runs differ: init × t1, init × t2, init × numpy_unseeded",
        "all_fixed: t1 and t2 draw exactly the same seeds but end with different weights",
        "all_fixed × numpy_unseeded: every source is fixed, but the library configuration leaves NumPy's global "
        "generator unseeded",
    ]
    for lesson in expected:
        assert any(sentence.startswith(lesson) for sentence in lessons), (lesson, lessons)
    details = listed_under(report, "Cell by cell")
    assert report.index("<h3>What this grid shows</h3>") < report.index("<h3>Cell by cell</h3>")
    for setting, libconf in demo:  # every cell's trace is there, below
        assert any(d.startswith(f"{setting} × {libconf}: training drew from") for d in details), (setting, libconf)


def test_the_demo_ends_with_the_lines_the_readme_shows(demo_dir):
    readme = (REPO / "README.md").read_text()
    start = readme.index("```", readme.index("A grid ends, after Snakemake's log")) + 3
    shown = readme[start:readme.index("```", start)].strip().splitlines()
    printed = (demo_dir / "stdout.txt").read_text().strip().splitlines()[-len(shown):]
    experiment_id = json.loads((demo_dir / "results" / "tracking.json").read_text())["experiment_id"]
    # the README's address is a fresh store's first experiment
    assert printed == [line.replace("/#/experiments/1", f"/#/experiments/{experiment_id}") for line in shown]
