"""Untrusted files never run code, secrets never reach the record, user strings never
reach the report unescaped."""

import ast
import os
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import REPO
from reprogrid.analysis.comparison import compare_runs
from reprogrid.analysis.runs import RunResult
from reprogrid.config.tracking_uri import tracking_uri
from reprogrid.record.envvars import recorded_env_vars
from reprogrid.report.figures import write_figures
from reprogrid.report.render import render_report


def test_every_checkpoint_load_in_the_package_is_weights_only():
    loads = []
    for path in (REPO / "reprogrid").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                weights_only = {k.arg: ast.unparse(k.value) for k in node.keywords}.get("weights_only")
                loads.append((path.name, weights_only))
    assert loads and all(flag == "True" for _, flag in loads), loads


def test_the_recorded_variables_leave_out_secrets_and_the_device_a_job_was_handed():
    environ = {
        "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "0", "PYTORCH_CUDA_ALLOC_CONF": "x",
        "TORCH_API_KEY": "k1", "CUDA_TOKEN": "t1", "MKL_PASSWORD": "p1", "OMP_Secret": "s1",
        "PYTORCH_CREDENTIALS": "c1", "TORCH_AUTH_HEADER": "a1", "HOME": "/root",
        "MLFLOW_TRACKING_PASSWORD": "p2", "AWS_SECRET_ACCESS_KEY": "s2",
    }
    assert recorded_env_vars(environ) == {"OMP_NUM_THREADS": "1", "PYTORCH_CUDA_ALLOC_CONF": "x"}


def test_credentials_in_a_tracking_uri_go_to_the_environment_not_the_record(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    uri = tracking_uri({"tracking_uri": "https://alice:s3cr%40t@mlflow.example.org:8443/prefix"})
    assert uri == "https://mlflow.example.org:8443/prefix"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cr@t"
    assert tracking_uri({"tracking_uri": "sqlite:///results/mlflow.db"}) == "sqlite:///results/mlflow.db"


def test_the_report_escapes_every_user_string(tmp_path):
    hostile = "<script>alert(1)</script>"
    runs = []
    for libconf in (hostile, "plain"):
        for replicate in (1, 2):
            logits = np.eye(3)[[0, 1, 2, replicate % 3]]
            runs.append(RunResult(
                key=f"{hostile}/{libconf}/r{replicate}", setting=hostile, libconf=libconf, replicate=replicate,
                expect_bitwise=False, varied_sources="init", init_weights=f"i{replicate}",
                weights=f"w{replicate}", predictions=f"p{replicate}", fingerprints=["e"],
                metrics={"test_accuracy": 0.75, "test_loss": 0.5}, train_seconds=1.0,
                logits=logits, labels=np.array([0, 1, 2, 0]), weights_path=None))
    comparison = compare_runs(runs)
    # strings no schema constrains: what diverge found (the user's op and module names, its detail)
    comparison.divergences = pd.DataFrame([{
        "setting": hostile, "libconf": "plain", "run_a": f"{hostile}/plain/r1", "run_b": f"{hostile}/plain/r2",
        "diverged": True, "epoch": 1, "step": 2, "phase": "forward", "op": f"aten::{hostile}",
        "module": f"Net.{hostile}", "cause": "random_op", "generator": hostile, "detail": f"it drew {hostile}"}])
    page = render_report(f"reprogrid: {hostile}", comparison, write_figures(comparison, Path(tmp_path)))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "aten::&lt;script&gt;" in page and "Net.&lt;script&gt;" in page and "it drew &lt;script&gt;" in page
