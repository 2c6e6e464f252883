"""The MLflow UI, in a real browser: `mlflow ui` on 127.0.0.1 over the store the tiny
grid filled shows its runs with their reprogrid tags and metrics. Screenshots go to
test-artifacts/screenshots/ (kept by CI)."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser import browser_page
from conftest import REPO, grid_runs

pytestmark = pytest.mark.workflow
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_ui(grid):
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri",
         f"sqlite:///{grid}/results/mlflow.db", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow ui did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def test_the_mlflow_ui_shows_the_grid_runs_with_their_tags_and_metrics(grid, mlflow_ui):
    runs = {r.info.run_name: r for r in grid_runs(grid)}
    run = runs["all_fixed/t1/r1"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page() as page:
        # MLflow 3's UI opens on its GenAI views; the runs are under "Model training"
        page.goto(f"{mlflow_ui}/#/experiments/{run.info.experiment_id}/runs?workflowType=machine_learning")
        for name in ("all_fixed/t1/r1", "init/numpy_unseeded/r2"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=30000)
        page.screenshot(path=SCREENSHOTS / "mlflow-experiment.png", full_page=True)

        page.goto(f"{mlflow_ui}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
        for text in ("reprogrid.run_key", "reprogrid.hash.weights", "test_accuracy"):
            page.get_by_text(text).first.wait_for(timeout=30000)
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
