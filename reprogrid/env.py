"""The environment record: what, besides code, config and data, decides a run's bits.

Software versions, platform, CPU, torch's build flags, the numerics-relevant
environment variables and the effective library state. Its canonical JSON is hashed
(`reprogrid.hash.env`) and logged whole. The host name is left out on purpose (two
identical machines should agree), and so is anything that looks like a secret.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata

# Only variables that can change numerics or threading are recorded.
RECORDED_ENV_PREFIXES = (
    "OMP_", "MKL_", "KMP_", "OPENBLAS_", "GOTO_", "BLIS_", "VECLIB_", "ONEDNN_", "DNNL_",
    "CUBLAS_", "CUDA_", "CUDNN_", "NVIDIA_TF32", "PYTORCH_", "TORCH_", "PYTHONHASHSEED",
)
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|KEY|CREDENTIAL|AUTH", re.IGNORECASE)


def recorded_env_vars(environ: dict | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in sorted(environ.items())
        if name.startswith(RECORDED_ENV_PREFIXES) and not SECRET_NAME.search(name)
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def restore_recorded_env_vars(recorded: dict[str, str]) -> dict[str, str | None]:
    """Make this process's numerics-relevant variables exactly those of a recorded run
    (set what it had, unset what it did not). Snakemake, for one, sets OMP_NUM_THREADS
    and its kin to each job's threads. Returns {name: value set, or None if unset}.
    Effective only before torch is imported: it reads some of them once."""
    changes: dict[str, str | None] = {}
    for name in set(recorded_env_vars()) | set(recorded):
        if name in recorded and os.environ.get(name) != recorded[name]:
            os.environ[name] = changes[name] = recorded[name]
        elif name not in recorded:
            del os.environ[name]
            changes[name] = None
    return changes


def environment_record(effective_library: dict) -> dict:
    import numpy as np
    import torch

    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "mlflow": package_version("mlflow"),
            "reprogrid": package_version("reprogrid"),
        },
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_build": torch.__config__.show(),
        "env_vars": recorded_env_vars(),
        "library": effective_library,
    }
