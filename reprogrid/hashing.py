"""Every hash reprogrid records, defined once (see design.md, "Hash definitions").

All digests are sha256 hex. Arrays are hashed with a small JSON header (name, dtype,
shape) before their raw little-endian bytes, so that two arrays with the same bytes but
different shapes or dtypes never collide. Nothing here imports torch: tensors are
reached through their own methods.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# Workflow files whose content defines what a run computes; see `code_digest`.
WORKFLOW_PATTERNS = ("Snakefile", "workflow/rules/*.smk", "scripts/*.py")

def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_digest(run_config: Mapping) -> str:
    return text_digest(canonical_json(run_config))


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _little_endian(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    return array.astype(array.dtype.newbyteorder("<"), copy=False)


def _update_with_array(digest, name: str, array: np.ndarray) -> None:
    array = _little_endian(array)
    header = canonical_json([name, array.dtype.str, list(array.shape)])
    digest.update(header.encode("utf-8") + b"\n")
    digest.update(array.tobytes(order="C"))


def arrays_digest(named_arrays: Iterable[tuple[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for name, array in named_arrays:
        _update_with_array(digest, name, np.asarray(array))
    return digest.hexdigest()


def data_digest(x_train, y_train, x_test, y_test) -> str:
    """The split data as the model sees it: train then test, features then labels."""
    return arrays_digest(
        [("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)]
    )


def tensor_to_numpy(tensor) -> np.ndarray:
    tensor = tensor.detach().cpu().contiguous()
    if str(tensor.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: hash its raw bits
        return tensor.view(dtype=_torch_int16()).numpy()
    return tensor.numpy()


def _torch_int16():
    import torch

    return torch.int16


def weights_digest(state_dict: Mapping) -> str:
    """sha256 over a state_dict in key order: each entry's name, dtype, shape and bytes."""
    return arrays_digest((name, tensor_to_numpy(t)) for name, t in state_dict.items())


def predictions_digest(logits: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of the float32 logits (C order) followed by the int64 labels (float32
    targets, for regression)."""
    digest = hashlib.sha256()
    labels = np.asarray(labels)
    label_dtype = np.float32 if np.issubdtype(labels.dtype, np.floating) else np.int64
    digest.update(_little_endian(np.asarray(logits, dtype=np.float32)).tobytes(order="C"))
    digest.update(_little_endian(labels.astype(label_dtype)).tobytes(order="C"))
    return digest.hexdigest()


def code_files(package_dir: str | Path, workflow_dir: str | Path | None) -> dict[str, Path]:
    """{label: path} of the package's sources ("reprogrid/...") and the workflow's files."""
    package_dir = Path(package_dir)
    files = {
        f"{package_dir.name}/{p.relative_to(package_dir).as_posix()}": p
        for p in package_dir.rglob("*.py")
    }
    if workflow_dir is not None:
        workflow_dir = Path(workflow_dir)
        for pattern in WORKFLOW_PATTERNS:
            files |= {p.relative_to(workflow_dir).as_posix(): p for p in workflow_dir.glob(pattern) if p.is_file()}
    return dict(sorted(files.items()))


def code_digest(package_dir: str | Path, workflow_dir: str | Path | None,
                extra_files: dict[str, Path] | None = None) -> str:
    """sha256 over the package's sources and the workflow's Snakefile, rules and scripts,
    in path order. Each file contributes its label and the sha256 of its content, so
    renaming a file changes the digest as much as editing it. The package is hashed where
    it is imported from, the workflow where it runs from: the code actually executed.
    `extra_files` adds the user's own code (model, data and loss factories)."""
    digest = hashlib.sha256()
    files = code_files(package_dir, workflow_dir) | (extra_files or {})
    for label, path in sorted(files.items()):
        digest.update(f"{label}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()
