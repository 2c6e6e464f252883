"""Apply a library configuration to torch and read back what actually took effect.

A requested knob is not proof: `set_num_interop_threads` fails silently-ish once work
has run, cuDNN flags are no-ops without cuDNN, CUBLAS_WORKSPACE_CONFIG is read once,
when cuBLAS starts, and native thread pools (OpenMP, BLAS) size themselves when they
load. So the effective state is read back inside the process that trains, after
applying: torch's flags, the thread pools as threadpoolctl finds them, the numerics
environment variables, whether each CUDA variable was set before CUDA started. That
record is the run's library record; its hash is `reprogrid.hash.library`.
"""

from __future__ import annotations

import logging
import os

import torch

from reprogrid.record.envvars import recorded_env_vars

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


# cuBLAS is deterministic only with a fixed workspace; PyTorch's docs name these two.
DETERMINISTIC_CUBLAS_WORKSPACE = ":4096:8"
_CUDA_ENV: dict[str, dict] = {}  # what apply_library set in this process, and when


def resolve_device(knobs: dict) -> str:
    """cpu or cuda: `auto` falls back to the CPU where torch sees no GPU."""
    if knobs["device"] == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return knobs["device"]


def cublas_workspace(knobs: dict) -> str | None:
    """The CUBLAS_WORKSPACE_CONFIG a configuration needs: as asked, or, for deterministic
    algorithms on CUDA (which refuse cuBLAS without it), PyTorch's recommended value."""
    if knobs["cublas_workspace_config"]:
        return knobs["cublas_workspace_config"]
    if resolve_device(knobs) == "cuda" and knobs["deterministic_algorithms"]:
        return DETERMINISTIC_CUBLAS_WORKSPACE
    return None


def set_cuda_environment(knobs: dict) -> None:
    """Environment variables CUDA libraries read once at start-up: set them, and record
    whether CUDA had already started in this process (then they may not take effect:
    a recorded fact, not a silent no-op)."""
    value = cublas_workspace(knobs)
    if value is None:
        return
    started = torch.cuda.is_initialized()
    if os.environ.get("CUBLAS_WORKSPACE_CONFIG") != value:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = value
        _CUDA_ENV["CUBLAS_WORKSPACE_CONFIG"] = {"value": value, "set_before_cuda_started": not started}
    else:
        _CUDA_ENV.setdefault("CUBLAS_WORKSPACE_CONFIG", {"value": value, "set_before_cuda_started": True})
    if started:
        log.warning("CUBLAS_WORKSPACE_CONFIG=%s set after CUDA started in this process: cuBLAS may ignore it", value)


def apply_library(knobs: dict) -> dict:
    """Set torch's global knobs from a resolved library configuration; return the effective state."""
    set_cuda_environment(knobs)  # first: before anything below can start CUDA
    torch.set_num_threads(knobs["threads"])
    if torch.get_num_interop_threads() != knobs["interop_threads"]:
        try:
            torch.set_num_interop_threads(knobs["interop_threads"])
        except RuntimeError as error:  # only settable once per process, before inter-op work
            log.warning("interop_threads not applied: %s", error)
    wanted = (knobs["deterministic_algorithms"], knobs["deterministic_algorithms"] and knobs["warn_only"])
    if (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) != wanted:
        # costly the first time (it imports torch._inductor): call it only for a change
        torch.use_deterministic_algorithms(wanted[0], warn_only=wanted[1])
    torch.backends.cudnn.benchmark = knobs["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = knobs["cudnn_deterministic"]
    torch.backends.cudnn.allow_tf32 = knobs["cudnn_allow_tf32"]
    torch.set_float32_matmul_precision(knobs["matmul_precision"])  # "highest" turns matmul TF32 off
    return effective_library(knobs)


def effective_library(knobs: dict) -> dict:
    """What torch reports now; knobs torch cannot report are echoed as applied."""
    device = resolve_device(knobs)
    state = {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "cuda_environment": dict(_CUDA_ENV),
        "dtype": knobs["dtype"],
        "device": device,
        # the SIMD path torch's CPU kernels take (ATEN_CPU_CAPABILITY, else the CPU's best)
        "cpu_capability": torch.backends.cpu.get_cpu_capability().lower(),
        "num_workers": knobs["num_workers"],
        "seed_workers": knobs["seed_workers"],
        "seed_python_random": knobs["seed_python_random"],
        "seed_numpy_global": knobs["seed_numpy_global"],
        "thread_pools": thread_pools(),
        "env_vars": recorded_env_vars(),
    }
    return state


def thread_pools() -> list[dict]:
    """The native thread pools loaded in this process, as threadpoolctl reads them from
    the libraries themselves (OpenMP runtimes, BLAS): what they run with, not what
    anybody asked for. File paths are left out: they name an install, not a setting."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer", "architecture")
    pools = [{k: pool[k] for k in keys if k in pool} for pool in threadpool_info()]
    return sorted(pools, key=lambda p: (p["user_api"], p["prefix"], str(p.get("version"))))


def mismatches(knobs: dict, effective: dict) -> dict:
    """Knobs whose effective value differs from the requested one: {knob: [asked, got]}.
    `device: auto` resolved to the CPU, or a cuBLAS workspace set for deterministic
    algorithms, show up here: recorded, not hidden."""
    return {k: [v, effective[k]] for k, v in knobs.items() if k in effective and effective[k] != v}


def torch_dtype(knobs: dict) -> torch.dtype:
    return DTYPES[knobs["dtype"]]


def torch_device(knobs: dict) -> torch.device:
    return torch.device(resolve_device(knobs))
