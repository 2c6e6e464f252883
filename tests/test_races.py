"""Two invocations in one working directory, started within milliseconds of each other:
exactly one works, the other is refused at once and names the one that holds it."""

import os
import subprocess

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, grid_runs, tiny_config

pytestmark = pytest.mark.workflow


def test_two_invocations_started_together_one_runs_the_other_is_refused(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--cores", "1", "--configfile", "config.yaml"]
    both = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outcomes = [(p.wait(timeout=600), p.stderr.read()) for p in both]
    for process in both:
        process.stdout.close()
        process.stderr.close()
    codes = sorted(code for code, _ in outcomes)
    assert codes[0] == 0 and codes[1] != 0, [err[-1500:] for _, err in outcomes]
    refused = next(err for code, err in outcomes if code != 0)
    winner = next(p for p, (code, _) in zip(both, outcomes) if code == 0)
    assert f"another snakemake (pid {winner.pid}) is running in {tmp_path}" in refused
    assert "Building DAG" not in refused  # refused before planning anything
    runs = grid_runs(tmp_path)
    assert sorted(r.info.run_name for r in runs) == sorted({r.info.run_name for r in runs})  # each key once
    assert len(runs) == 8
    print("\nreliability: two invocations started together in one directory: one ran the grid (8 runs, each "
          "recorded once), the other was refused before planning, naming the first's pid")
