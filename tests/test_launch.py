"""A training command's failures, each one line naming the run and the file: a crash, a
hang past the timeout (its workers stopped with it), no metrics file, a malformed one."""

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reprogrid.watch.launch import CommandFailed, environment, filled, read_metrics, run


def script(tmp_path, body: str) -> str:
    (tmp_path / "train.py").write_text(textwrap.dedent(body))
    return f"{sys.executable} train.py"


def plain(tmp_path) -> dict:
    """The command's environment without the watch (these tests are of the runner alone)."""
    return {k: v for k, v in environment(tmp_path / "spec.json", None).items() if k != "REPROGRID_WATCH"}


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a reaper (a container's PID 1 may not reap)."""
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_placeholders_are_filled_and_the_outdir_quoted(tmp_path):
    outdir = tmp_path / "runs" / "a b"
    assert filled("python train.py --seed {seed} --out {outdir} --r {replicate} --json '{{}}'", 7, outdir, 2) == \
        f"python train.py --seed 7 --out '{outdir}' --r 2 --json '{{}}'"


def test_a_crash_fails_naming_the_run_and_the_logs_last_lines(tmp_path):
    command = script(tmp_path, "print('epoch 1'); raise SystemExit('out of patience')\n")
    log = tmp_path / "train.log"
    with pytest.raises(CommandFailed) as failed:
        run("fixed/t1/r1", command, plain(tmp_path), log, tmp_path, 60)
    assert str(failed.value) == (f"run fixed/t1/r1: training.command exited with status 1; log {log}: "
                                 "epoch 1 | out of patience")


def test_a_hang_past_the_timeout_is_stopped_with_its_children(tmp_path):
    command = script(tmp_path, """\
        import subprocess, sys, time
        sleeper = "import os, time; open('child.pid', 'w').write(str(os.getpid())); time.sleep(600)"
        child = subprocess.Popen([sys.executable, "-c", sleeper])
        time.sleep(600)
    """)
    started = time.monotonic()
    with pytest.raises(CommandFailed, match=r"^run s/l/r2: training.command ran past training.timeout_s \(3 s\)"):
        run("s/l/r2", command, plain(tmp_path), tmp_path / "log", tmp_path, 3)
    assert time.monotonic() - started < 60
    child = int((tmp_path / "child.pid").read_text())
    time.sleep(0.5)
    assert not alive(child)


@pytest.mark.parametrize("content, said", [
    (None, "wrote no metrics file"),
    ("{'accuracy': 0.9}", "is not JSON"),
    ("[0.9]", "holds a list, not an object of name: number"),
    ('{"accuracy": "high", "loss": NaN}', "'accuracy', 'loss' not finite numbers"),
])
def test_a_missing_or_malformed_metrics_file_is_named(tmp_path, content, said):
    path = tmp_path / "metrics.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CommandFailed, match=r"^run a/b/r1: ") as failed:
        read_metrics("a/b/r1", path)
    assert said in str(failed.value) and str(path) in str(failed.value)


def test_good_metrics_are_read_as_floats(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"test_accuracy": 0.93, "epochs": 3}))
    assert read_metrics("a/b/r1", path) == {"test_accuracy": 0.93, "epochs": 3.0}
