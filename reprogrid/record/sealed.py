"""The JSON files steps hand each other (seeds.json, train.json, eval.json, ...).

Written atomically and durably, so a killed job (or a lost machine) never leaves half a
file. train.json and eval.json
are sealed: they carry the sha256 of their own content (`record_sha256`), so a
truncated, damaged or hand-edited record is refused by whatever reads it next, by name.

The seal is not a signature: it has no key, so someone who edits a record and
recomputes its seal passes it. What stops such a forgery is elsewhere: compare
recomputes every metric from the predictions (reprogrid.analysis.recompute) and checks each
run's hashes and metrics against the MLflow run that recorded it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from reprogrid.record.hashing import canonical_json, text_digest

SEAL = "record_sha256"
UMASK = os.umask(0)  # read once (it can only be read by setting it), put back at once
os.umask(UMASK)


class IntegrityError(RuntimeError):
    """A file's content is not what the step that wrote it recorded."""


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> None:
    """`write(partial)` a sibling file of a name no other writer uses, flush it to disk,
    then rename it onto `path` and flush the directory: readers (and a job killed half-way,
    or a machine that loses power) see the old file or the whole new one, never a part, and
    two writers of one path never write into each other's partial. The partial keeps the
    suffix, for writers that insist on it (np.save, np.savez)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}")
    os.fchmod(handle, 0o666 & ~UMASK)  # mkstemp's 0600 would make every output private
    os.close(handle)
    partial = Path(name)
    try:
        write(partial)
        _flush(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _flush(path.parent)


def _flush(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json(path: str | Path, document: dict) -> None:
    text = json.dumps(document, indent=1, sort_keys=True) + "\n"
    write_atomically(path, lambda partial: partial.write_text(text))


def read_json(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def seal_of(document: dict) -> str:
    return text_digest(canonical_json({k: v for k, v in document.items() if k != SEAL}))


def write_sealed(path: str | Path, document: dict) -> dict:
    sealed = {**document, SEAL: seal_of(document)}
    write_json(path, sealed)
    return sealed


def read_sealed(path: str | Path) -> dict:
    """A sealed record, or IntegrityError naming the file and what to do."""
    path = Path(path)
    rerun = f"rerun the step that writes it (snakemake --forcerun ... {path.parent / 'eval.json'})"
    try:
        document = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise IntegrityError(f"{path}: not valid JSON ({error}); it was truncated or damaged: {rerun}") from None
    if not isinstance(document, dict) or document.get(SEAL) != seal_of(document):
        raise IntegrityError(f"{path}: its content does not match its recorded sha256, so it was edited or "
                             f"damaged after it was written: {rerun}")
    return document
