"""The MLflow UI, in a real browser: `mlflow ui` on 127.0.0.1 over the store the tiny
grid filled shows its runs with their reprogrid tags and metrics. Screenshots go to
test-artifacts/screenshots/ (kept by CI)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser import browser_page
from conftest import GRID_STDOUT, REPO, grid_runs

pytestmark = pytest.mark.workflow
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(server: subprocess.Popen) -> None:
    """Stop `mlflow ui` and the workers it started (its own process group)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    except ProcessLookupError:  # the whole group has exited: reap the server
        server.wait()
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def start_ui(grid: Path, log: Path) -> tuple[subprocess.Popen, str | None]:
    """`mlflow ui` on a free port, and its URL once /health answers (None if it never did).
    Its log goes to a file: a pipe nobody drains would block the server once full."""
    port = free_port()
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri",
             f"sqlite:///{grid}/results/mlflow.db", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    # generous: on a loaded 2-core machine the server's imports alone can take a minute
    deadline = time.monotonic() + 300
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server, url
        except OSError:
            pass
        time.sleep(0.5)
    return server, None


@pytest.fixture
def mlflow_ui(grid, tmp_path):
    # a second port if the first was taken between probing it and the server binding it
    for attempt in (1, 2):
        log = tmp_path / f"mlflow-ui-{attempt}.log"
        server, url = start_ui(grid, log)
        if url:
            break
        stop(server)
    else:
        pytest.fail(f"mlflow ui did not start: {log.read_text(errors='replace')[-2000:]}")
    try:
        yield url
    finally:
        stop(server)


def wait_for_text(page, text: str, screenshot: str) -> None:
    """Wait for `text` on the page; failing, keep a screenshot and say what the page showed.
    Generous: the UI's bundle and first search took over 30 s on a loaded 2-core CI machine."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_text(text, exact=True).first.wait_for(timeout=180_000)
    except PlaywrightTimeout:
        page.screenshot(path=SCREENSHOTS / screenshot, full_page=True)
        shown = page.inner_text("body")[:1500]
        pytest.fail(f"{text!r} not shown at {page.url} within 180 s; the page showed:\n{shown}")


def test_the_mlflow_ui_shows_the_grid_runs_with_their_tags_and_metrics(grid, mlflow_ui):
    runs = {r.info.run_name: r for r in grid_runs(grid)}
    run = runs["all_fixed/t1/r1"]
    if (grid / ".git").is_dir():  # the grid fixture's directory is a repository where git exists
        head = subprocess.run(["git", "-C", str(grid), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert {r.data.tags.get("mlflow.source.git.commit") for r in runs.values()} == {head}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page() as page:
        # the address the grid's last lines give (MLflow 3's UI would open the experiment on traces)
        [printed] = [line for line in (grid / GRID_STDOUT).read_text().splitlines() if "MLflow UI:" in line]
        page.goto(mlflow_ui + printed.split("http://127.0.0.1:5000", 1)[1])
        for name in ("all_fixed/t1/r1", "init/numpy_unseeded/r2"):
            wait_for_text(page, name, "mlflow-experiment-failed.png")
        # the Source column names what trained the runs
        wait_for_text(page, run.data.tags["mlflow.source.name"], "mlflow-source-failed.png")
        page.screenshot(path=SCREENSHOTS / "mlflow-experiment.png", full_page=True)

        page.goto(f"{mlflow_ui}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
        for text in ("reprogrid.run_key", "reprogrid.hash.weights", "test_accuracy"):
            wait_for_text(page, text, "mlflow-run-failed.png")
        body = page.inner_text("body")
        assert run.data.tags["reprogrid.hash.weights"][:12] in body or "reprogrid.expect_bitwise" in body
        page.screenshot(path=SCREENSHOTS / "mlflow-run.png", full_page=True)


def test_the_report_figures_load_in_the_browser(grid):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page() as page:
        page.goto((grid / "results" / "compare" / "report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert images and all(images)
        page.screenshot(path=SCREENSHOTS / "report.png", full_page=True)
