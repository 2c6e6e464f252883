"""MLflow telemetry is off in every process reprogrid starts, with a fresh HOME and no
CI or pytest variables (MLflow switches telemetry off by itself under those)."""

import subprocess
import sys

CHECK = """
import sys
if sys.argv[1] == "reprogrid":
    from reprogrid.steps.setup import prepare_tracking
    prepare_tracking("sqlite:///mlflow.db", "telemetry", "tracking.json")
from mlflow.telemetry.utils import is_telemetry_disabled
print(is_telemetry_disabled())
"""


def probe(tmp_path, entry: str) -> str:
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / entry)}  # no CI, no PYTEST_CURRENT_TEST
    done = subprocess.run([sys.executable, "-c", CHECK, entry], cwd=tmp_path, env=bare, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_telemetry_is_off_in_a_reprogrid_process_and_would_be_on_without_it(tmp_path):
    assert probe(tmp_path, "plain mlflow") == "False"  # the check can tell
    assert probe(tmp_path, "reprogrid") == "True"
    assert not (tmp_path / "reprogrid" / ".config" / "mlflow").exists()  # nothing written under HOME
