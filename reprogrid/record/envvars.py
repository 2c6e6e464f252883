"""The numerics environment variables of a job: which are recorded, and restoring them.

Thread counts (Snakemake sets OMP_NUM_THREADS and its kin to each job's threads),
OpenMP scheduling, BLAS kernels, cuBLAS workspaces: variables that native libraries
read, mostly once, when they load. They belong to the library record (per job), not
to the environment record (per machine). Nothing here imports torch: a replay must
set them before torch loads.
"""

from __future__ import annotations

import os
import re

# Only variables that can change numerics or threading are recorded.
RECORDED_ENV_PREFIXES = (
    "ATEN_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "GOTO_", "BLIS_", "VECLIB_", "ONEDNN_", "DNNL_",
    "CUBLAS_", "CUDA_", "CUDNN_", "NVIDIA_TF32", "PYTORCH_", "TORCH_", "PYTHONHASHSEED",
)
# Not numerics settings: which device a job was handed is the scheduler's choice (a
# cluster gives every job another index on identical GPUs); threadpoolctl sets
# KMP_DUPLICATE_LIB_OK when imported (it only stops Intel's OpenMP from aborting when
# loaded twice), so whether a process has imported it yet would show as a difference.
NOT_NUMERICS = ("CUDA_VISIBLE_DEVICES", "KMP_DUPLICATE_LIB_OK")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
# The thread counts a native library reads at load; a warm child applies them itself.
THREAD_COUNTS = {
    "openmp": ("OMP_NUM_THREADS",),
    "blas": ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "OMP_NUM_THREADS"),
}


def recorded_env_vars(environ: dict | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in sorted(environ.items())
        if name.startswith(RECORDED_ENV_PREFIXES) and name not in NOT_NUMERICS and not SECRET_NAME.search(name)
    }


def load_time_env_vars(environ: dict | None = None) -> dict[str, str]:
    """The recorded variables other than thread counts: what native libraries read once,
    when they load, and nothing can change afterwards."""
    counts = {name for names in THREAD_COUNTS.values() for name in names}
    return {k: v for k, v in recorded_env_vars(environ).items() if k not in counts}


def thread_limits(environ: dict | None = None) -> dict[str, int]:
    """{"openmp": n, "blas": n} as a process started with `environ` would load them."""
    environ = os.environ if environ is None else environ
    limits = {}
    for api, names in THREAD_COUNTS.items():
        for name in names:
            value = environ.get(name, "").split(",")[0].strip()
            if value.isdigit() and int(value) > 0:
                limits[api] = int(value)
                break
    return limits


# torch's CPU kernels: ATEN_CPU_CAPABILITY picks the SIMD path (read once, at first use).
# torch takes any value it knows, whether the CPU has the instructions or not (and then
# dies of an illegal instruction), so what this CPU can run is read from its flags.
CAPABILITY_ENV = "ATEN_CPU_CAPABILITY"
CAPABILITY_FLAGS = {"default": set(), "avx2": {"avx2", "fma"}, "avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq"}}


def supported_capabilities(cpuinfo: str | None = None) -> list[str]:
    """The ATEN_CPU_CAPABILITY values this CPU can run (x86 Linux: from /proc/cpuinfo's
    flags; elsewhere only `default` is known to be safe)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                cpuinfo = handle.read()
        except OSError:
            cpuinfo = ""
    line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    flags = set(line.partition(":")[2].split())
    return [name for name, needed in CAPABILITY_FLAGS.items() if needed <= flags]


def check_capability(value: str) -> None:
    """Refuse (ValueError) a capability this CPU cannot run."""
    supported = supported_capabilities()
    if value not in supported:
        raise ValueError(f"cpu_capability {value!r} needs instructions this CPU does not have "
                         f"(it can run: {', '.join(supported)}); torch would die of an illegal instruction")


def size_thread_pools(environ: dict | None = None) -> None:
    """Give this process's OpenMP and BLAS pools the sizes a fresh process started with
    `environ` would have given them at load (the libraries' default: one per CPU this
    process may use). For a process whose libraries loaded under other settings: a warm
    server's child, a replay that restored a run's variables after NumPy loaded."""
    from threadpoolctl import threadpool_limits

    limits = thread_limits(environ)
    cpus = len(os.sched_getaffinity(0))
    threadpool_limits(limits={api: limits.get(api, cpus) for api in THREAD_COUNTS})


def restore_recorded_env_vars(recorded: dict[str, str]) -> dict[str, str | None]:
    """Make this process's numerics-relevant variables exactly those of a recorded run
    (set what it had, unset what it did not). Snakemake, for one, sets OMP_NUM_THREADS
    and its kin to each job's threads. Returns {name: value set, or None if unset}.
    Effective only before torch is imported: it reads some of them once. A recorded CPU
    capability this CPU cannot run is refused (ValueError) before anything is set."""
    if recorded.get(CAPABILITY_ENV):
        try:
            check_capability(recorded[CAPABILITY_ENV].lower())
        except ValueError as error:
            raise ValueError(f"the recorded {CAPABILITY_ENV}: {error}") from None
    changes: dict[str, str | None] = {}
    for name in set(recorded_env_vars()) | set(recorded):
        if name in recorded and os.environ.get(name) != recorded[name]:
            os.environ[name] = changes[name] = recorded[name]
        elif name not in recorded:
            del os.environ[name]
            changes[name] = None
    return changes


def with_recorded_env_vars(environ: dict, recorded: dict[str, str]) -> dict[str, str]:
    """`environ` with its numerics-relevant variables made exactly a recorded run's, for a
    process about to start (this one's are left alone)."""
    return {k: v for k, v in environ.items() if k not in recorded_env_vars(environ)} | recorded
