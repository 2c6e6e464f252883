"""Apply a library configuration to torch and read back what actually took effect.

A requested knob is not proof: `set_num_interop_threads` fails silently-ish once work
has run, cuDNN flags are no-ops without cuDNN. So the effective state is read back from
torch after applying, and that is what runs record.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def apply_library(knobs: dict) -> dict:
    """Set torch's global knobs from a resolved library configuration; return the effective state."""
    torch.set_num_threads(knobs["threads"])
    if torch.get_num_interop_threads() != knobs["interop_threads"]:
        try:
            torch.set_num_interop_threads(knobs["interop_threads"])
        except RuntimeError as error:  # only settable once per process, before inter-op work
            log.warning("interop_threads not applied: %s", error)
    if torch.are_deterministic_algorithms_enabled() != knobs["deterministic_algorithms"]:
        # costly the first time (it imports torch._inductor): call it only for a change
        torch.use_deterministic_algorithms(knobs["deterministic_algorithms"])
    torch.backends.cudnn.benchmark = knobs["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = knobs["cudnn_deterministic"]
    torch.set_float32_matmul_precision(knobs["matmul_precision"])
    return effective_library(knobs)


def effective_library(knobs: dict) -> dict:
    """What torch reports now; knobs torch cannot report are echoed as applied."""
    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "dtype": knobs["dtype"],
        "device": knobs["device"],
        "num_workers": knobs["num_workers"],
        "seed_workers": knobs["seed_workers"],
        "seed_python_random": knobs["seed_python_random"],
        "seed_numpy_global": knobs["seed_numpy_global"],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def mismatches(knobs: dict, effective: dict) -> dict:
    """Knobs whose effective value differs from the requested one: {knob: [asked, got]}."""
    return {k: [v, effective[k]] for k, v in knobs.items() if effective.get(k) != v}


def torch_dtype(knobs: dict) -> torch.dtype:
    return DTYPES[knobs["dtype"]]


def torch_device(knobs: dict) -> torch.device:
    return torch.device(knobs["device"])
