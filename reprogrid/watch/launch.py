"""Running a `training.command` for one run: placeholders filled, the watch on its Python
path, output to the run's log, and every way it can fail said in one line naming the run
and the file (the log, the metrics file) before anything is recorded."""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from reprogrid.record.envvars import with_recorded_env_vars
from reprogrid.watch import ENVIRONMENT

SITE = Path(__file__).resolve().parent / "site"
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
PLACEHOLDERS = ("seed", "outdir", "replicate")


class CommandFailed(Exception):
    """One line: the run, what went wrong, the file to look at."""


def filled(template: str, seed: int, outdir: Path, replicate: int, args: dict | None = None) -> str:
    """The command with its placeholders filled ({{ and }} stay literal braces): reprogrid's
    and the config's own `training.args` (a variant's), each shell-quoted."""
    own = {name: shlex.quote(str(value)) for name, value in (args or {}).items()}
    return template.format(**own, seed=seed, outdir=shlex.quote(str(outdir)), replicate=replicate)


def environment(spec_path: Path, hash_seed: int | None, numerics: dict[str, str] | None = None) -> dict:
    """The command's environment: the watch's sitecustomize first on PYTHONPATH (reaching
    workers and Python subprocesses), reprogrid importable, `python` the workflow's own
    interpreter, the hash seed the run's `hash` source gives, and (a re-execution's) the
    numerics variables a run recorded."""
    env = dict(os.environ) if numerics is None else with_recorded_env_vars(os.environ, numerics)
    paths = [str(SITE), str(PACKAGE_PARENT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env[ENVIRONMENT] = str(spec_path)
    env.pop("REPROGRID_WATCH_MAIN_PID", None)
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = str(hash_seed)
    return env


def last_lines(log: Path, count: int = 5) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return " | ".join(line.strip() for line in lines[-count:] if line.strip()) or "(empty)"


def run(run_key: str, command: str, env: dict, log: Path, cwd: Path, timeout_s: float | None) -> None:
    """Run the command; raise CommandFailed on a non-zero exit or past `timeout_s`."""
    with log.open("ab") as sink:
        process = subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            status = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the script, its workers, its subprocesses
            process.wait()
            raise CommandFailed(f"run {run_key}: training.command ran past training.timeout_s ({timeout_s:g} s) "
                                f"and was stopped; log {log}: {last_lines(log)}") from None
    if status != 0:
        raise CommandFailed(f"run {run_key}: training.command exited with status {status}; "
                            f"log {log}: {last_lines(log)}")


def read_metrics(run_key: str, path: Path) -> dict[str, float]:
    """`outputs.metrics`: a flat JSON object of finite numbers."""
    if not path.is_file():
        raise CommandFailed(f"run {run_key}: training.command wrote no metrics file {path} (training.outputs.metrics)")
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CommandFailed(f"run {run_key}: metrics file {path} is not JSON ({error})") from None
    if not isinstance(metrics, dict):
        raise CommandFailed(f"run {run_key}: metrics file {path} holds a {type(metrics).__name__}, "
                            "not an object of name: number")
    bad = [name for name, value in metrics.items()
           if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)]
    if bad:
        raise CommandFailed(f"run {run_key}: metrics file {path}: {', '.join(map(repr, bad[:3]))} "
                            "not finite numbers")
    return {name: float(value) for name, value in metrics.items()}
