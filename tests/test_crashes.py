"""SIGKILL the whole snakemake process tree mid-grid, several times; the next
`snakemake --cores 2 --rerun-incomplete` completes, nothing is left RUNNING, and every
cell that expects bitwise results ends exactly as in an uninterrupted run. MLflow only
records: a run killed while it trains leaves nothing in the store."""

import csv
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, grid_runs, run_snakemake, snakemake_command, tiny_config
from reprogrid.record.sealed import read_json

pytestmark = pytest.mark.workflow
CONFIG = tiny_config(replicates=4, training={"epochs": 4, "batch_size": 64, "optimizer": "sgd", "lr": 0.05,
                                             "momentum": 0.9})
TIMING = {"train_seconds_median", "train_seconds_relative"}


def summary(workdir):
    with open(workdir / "results" / "compare" / "summary.csv") as handle:
        return {(r["setting"], r["libconf"]): r for r in csv.DictReader(handle)}


def recorded_keys(workdir) -> set[str]:
    """The run keys that have an MLflow run, in any state."""
    database = workdir / "results" / "mlflow.db"
    if not database.exists():
        return set()
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
        return {name for (name,) in db.execute("select name from runs")}


def training_now(workdir) -> set[str]:
    """The keys whose seeds exist and train.json not yet: their train jobs are mid-way."""
    runs = workdir / "results" / "runs"
    return {str(seeds.parent.relative_to(runs)) for seeds in runs.glob("*/*/*/seeds.json")
            if not (seeds.parent / "train.json").exists()}


def kill_when(workdir, trained: int, deadline: float = 90) -> bool:
    """Start the grid in its own session and SIGKILL the whole session once at least
    `trained` runs have train.json and another is training, and check that the runs
    killed while training have no MLflow run. Return whether the kill happened before
    the grid finished."""
    process = subprocess.Popen(
        [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "config.yaml",
         "--rerun-incomplete"], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    started = time.monotonic()
    try:
        while process.poll() is None and time.monotonic() - started < deadline:
            done = len(list((workdir / "results" / "runs").glob("*/*/*/train.json")))
            if done >= trained and training_now(workdir):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                # MLflow only records: a run killed while it trained left nothing there (a
                # recorder killed while writing another run may leave that one RUNNING)
                assert training_now(workdir) and not training_now(workdir) & recorded_keys(workdir)
                return True
            time.sleep(0.05)
        return False
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_killed_grids_complete_and_match_an_uninterrupted_run(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for workdir in (reference, killed):
        workdir.mkdir()
        (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    done = run_snakemake(reference, "--cores", "2", "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-3000:]

    kills = [kill_when(killed, trained) for trained in (1, 5, 10)]
    assert sum(kills) >= 2, kills  # at least two kills landed mid-grid
    finished = run_snakemake(killed, "--cores", "2", "--configfile", "config.yaml", "--rerun-incomplete")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "removed the lock left by a snakemake that was killed" in finished.stderr

    expected, got = summary(reference), summary(killed)
    assert set(expected) == set(got)
    for cell, row in expected.items():
        if row["expect_bitwise"] == "true":
            assert {k: v for k, v in got[cell].items() if k not in TIMING} == \
                   {k: v for k, v in row.items() if k not in TIMING}, cell

    runs = grid_runs(killed)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    dead = [r for r in runs if r.info.status == "KILLED"]  # only recorders killed mid-write
    assert all("its recording was interrupted" in r.data.tags["reprogrid.killed_reason"] for r in dead)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len({r.info.run_name for r in finished}) == 16
    for key in {r.info.run_name for r in finished}:  # a key recorded twice (killed after recording) agrees
        attempts = [r for r in finished if r.info.run_name == key]
        assert len({r.data.tags["reprogrid.hash.weights"] for r in attempts}) == 1 or \
            attempts[0].data.tags["reprogrid.expect_rerun_bitwise"] == "false", key
    audit = subprocess.run([str(SNAKEMAKE.with_name("reprogrid")), "audit"], cwd=killed, capture_output=True,
                           text=True)
    assert audit.returncode == 0, audit.stdout
    print(f"\nreliability: {sum(kills)} of {len(kills)} SIGKILLs landed mid-grid; {len(dead)} MLflow runs "
          f"marked KILLED; {len(finished)} finished runs for 16/16 keys; bitwise cells equal to the uninterrupted run")


def alive_in(workdir, command: str = "") -> list[int]:
    """Processes working in `workdir` (jobs a killed snakemake left behind) whose command
    line contains `command`."""
    pids = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if os.readlink(cwd) == str(workdir) and command in (cwd.parent / "cmdline").read_text():
                pids.append(int(cwd.parent.name))
        except OSError:
            continue
    return pids


def train_jobs_in(workdir) -> list[int]:
    return alive_in(workdir, "step.py\0train")


@pytest.mark.parametrize("warm, edited", [("1", True), ("0", True), ("1", False)],
                         ids=["warm-edited", "fresh-edited", "warm-same-config"])
def test_sigkill_of_snakemake_alone_then_a_rerun_ends_with_the_current_configs_results(tmp_path, warm, edited):
    """kill -9 of snakemake only (its jobs live on), the config edited or not, the rerun
    started at once: it waits for the orphans instead of working beside them, their
    results never replace its own, and every run's record holds the config now in force.
    Two runs orphaned mid-training and paused until the rerun is seen waiting for them."""
    old = tiny_config(replicates=1, seed_settings={"all_fixed": {}},
                      training={"epochs": 400, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9})
    # the edit shortens training: without the run locks, the rerun would finish first and
    # the orphans would then overwrite its results with the old config's
    new = old | {"training": old["training"] | {"epochs": 40}} if edited else old
    epochs = new["training"]["epochs"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"REPROGRID_WARM_WORKERS": warm}
    process = subprocess.Popen([str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--cores", "2",
                                "--configfile", "config.yaml"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(train_jobs_in(tmp_path)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(train_jobs_in(tmp_path)) == 2, "the grid never started training"
    time.sleep(1)  # well into training
    process.kill()  # snakemake alone: its jobs are orphaned, not killed
    process.wait()
    orphans = alive_in(tmp_path)
    assert orphans, "no job outlived snakemake: the scenario did not happen"

    # paused until the rerun is seen waiting for them: on a fast or loaded machine they
    # could otherwise finish before the rerun reaches its first run, and it would meet no one
    for pid in orphans:
        os.kill(pid, signal.SIGSTOP)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(new))
    rerun = start_snakemake(tmp_path, "--cores", "2", "--configfile", "config.yaml", "--rerun-incomplete", env=env)
    stderr = StreamWatch(rerun.stderr, "waiting for an earlier attempt at run")
    met = stderr.seen.wait(timeout=120)
    for pid in orphans:
        os.kill(pid, signal.SIGCONT)
    assert rerun.wait(timeout=600) == 0, stderr.text()[-3000:]
    assert met, "the rerun never waited for the orphaned jobs"
    assert wait_gone(orphans), "jobs of the killed snakemake were still alive after the rerun"
    again = run_snakemake(tmp_path, "--cores", "2", "--configfile", "config.yaml", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stderr or "Nothing to be done" in again.stdout

    records = sorted((tmp_path / "results" / "runs").glob("*/*/*/train.json"))
    assert len(records) == 2
    assert {read_json(p)["run_config"]["training"]["epochs"] for p in records} == {epochs}
    assert {len(read_json(p)["epochs"]) for p in records} == {epochs}
    audit = subprocess.run([str(SNAKEMAKE.with_name("reprogrid")), "audit"], cwd=tmp_path, capture_output=True,
                           text=True)
    assert audit.returncode == 0, audit.stdout
    finished = [r for r in grid_runs(tmp_path) if r.info.status == "FINISHED"]
    latest = {}
    for r in sorted(finished, key=lambda r: r.info.start_time):
        latest[r.info.run_name] = r
    assert {r.data.params["training.epochs"] for r in latest.values()} == {str(epochs)}
    print(f"\nreliability: snakemake alone SIGKILLed (warm workers {'on' if warm == '1' else 'off'}), "
          f"config {'edited' if edited else 'unchanged'}, {len(orphans)} orphaned processes; the rerun waited for them; "
          "2/2 runs hold the current config")


def start_snakemake(workdir, *args: str, env: dict) -> subprocess.Popen:
    """The workflow started in `workdir`, its stderr a pipe to read while it runs."""
    return subprocess.Popen(snakemake_command(workdir, *args), cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


class StreamWatch:
    """Reads a stream to its end in a thread; `seen` is set once a line holds `text`."""

    def __init__(self, stream, text: str):
        self.lines, self.seen = [], threading.Event()
        self._thread = threading.Thread(target=self._read, args=(stream, text), daemon=True)
        self._thread.start()

    def _read(self, stream, text):
        for line in stream:
            self.lines.append(line)
            if text in line:
                self.seen.set()

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def wait_gone(pids: list[int], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in pids if os.path.exists(f"/proc/{p}") and
                not open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"]:
            return True
        time.sleep(0.1)
    return False
