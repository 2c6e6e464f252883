"""Every hash reprogrid records, defined once (docs/architecture.md, "Hashes").

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


def code_digest(file_digests: dict[str, str]) -> str:
    """sha256 over the code a run ran (reprogrid.record.provenance): each file's label and the
    sha256 of its content, in label order, so renaming a file changes the digest as much
    as editing it."""
    digest = hashlib.sha256()
    for label, sha in sorted(file_digests.items()):
        digest.update(f"{label}\0{sha}\n".encode())
    return digest.hexdigest()
