"""The environment record: the machine and the software a run executed on.

Python and package versions, platform, CPU, torch's build flags and, where torch sees
one, the GPU with its driver, CUDA and cuDNN versions. Nothing per job (no device
index, no paths, no environment variables) and no library knob: two runs on one
machine with one install share it, whatever their library configuration. Its
canonical JSON is hashed (`reprogrid.hash.env`) and logged whole (`env.json`). The
host name is left out on purpose: two identical machines should agree. What a job set
(threads, flags, numerics variables) is the library record's (`reprogrid.inputs.library`).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from reprogrid.record.hashing import canonical_json, text_digest


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


def environment_record() -> dict:
    import numpy as np
    import torch

    from reprogrid.record.envvars import supported_capabilities

    record = {
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
        # what the CPU can run; which path a run's kernels took is its library record's
        # (ATEN_CPU_CAPABILITY is a library knob), so it is left out of the build line too
        "cpu_capabilities": supported_capabilities(),
        "torch_build": "\n".join(line for line in torch.__config__.show().splitlines()
                                 if "CPU capability usage" not in line),
    }
    if torch.cuda.is_available():
        record["gpu"] = gpu_details()
    return record


def gpu_details() -> dict:
    """The GPU (the first visible one: a job's device index is not the machine's) and the
    CUDA stack under it."""
    import torch

    properties = torch.cuda.get_device_properties(0)
    return {
        "gpu": properties.name,
        "count": torch.cuda.device_count(),
        "capability": f"{properties.major}.{properties.minor}",
        "multiprocessors": properties.multi_processor_count,
        "driver": _driver_version(),
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }


def _driver_version() -> str | None:
    try:
        import pynvml  # nvidia-ml-py, where installed

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else version
    except Exception:  # noqa: BLE001 - no NVML here: say so rather than fail the run
        return None


def record_digest(record: dict) -> str:
    """The hash of an environment or library record: sha256 of its canonical JSON."""
    return text_digest(canonical_json(record))
