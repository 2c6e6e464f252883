"""The code a run ran, for its code hash: the modules of reprogrid its steps import (read
statically, function-level imports included, to any depth: the same set in a fresh
process and in a warm server's child, which has more loaded) and the user's own code
its config names (the packages of its factories), each as it was when this process
began to use it.

Files are stamped (modification time and size) when this module is imported, which every
job does first (reprogrid/workflow/scripts/step.py, the warm server before it forks), and the user's files
when their factory is imported. A file that changed since is code this process may not
have run: the hash refuses it (CodeChanged), naming the file, rather than record code
that never ran. A typo fixed in the report or the audit changes no run's code hash: they
are not in the training's closure.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # reprogrid/
# what a run's outputs depend on: its training and its evaluation (with their records)
RUN_STEPS = ("reprogrid.training.train_run", "reprogrid.evaluation.evaluate_run")
_STAMPS: dict[Path, tuple[int, int]] = {}


class CodeChanged(RuntimeError):
    """A source file changed on disk after this process began to use it."""


def _stat(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_mtime_ns, status.st_size


def stamp(paths) -> None:
    """Remember how `paths` were when first seen by this process."""
    for path in paths:
        _STAMPS.setdefault(Path(path).resolve(), _stat(Path(path)))


def _package_sources(directory: str):
    """The package's .py files, found with os.scandir (a job's client stamps them as it starts:
    rglob and resolve would cost it 10 ms)."""
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            yield from _package_sources(entry.path)
        elif entry.name.endswith(".py"):
            yield Path(entry.path).resolve() if entry.is_symlink() else Path(entry.path)


def _stamp_package() -> None:
    for path in _package_sources(str(PACKAGE)):
        _STAMPS.setdefault(path, _stat(path))


_stamp_package()


def _module_file(name: str) -> Path | None:
    relative = Path(*name.split(".")[1:])
    for candidate in (PACKAGE / relative.with_suffix(".py"), PACKAGE / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path) -> set[str]:
    """The reprogrid modules a file imports, anywhere in it."""
    import ast  # only where a code hash is computed, not in every job's client

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "reprogrid":
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "reprogrid"}
    return found


@functools.cache
def closure(roots: tuple[str, ...] = RUN_STEPS) -> tuple[Path, ...]:
    """The package's files that `roots` import, transitively (and the package's __init__)."""
    seen: dict[str, Path] = {}
    pending = ["reprogrid", *roots]
    while pending:
        name = pending.pop()
        path = _module_file(name) if name != "reprogrid" else PACKAGE / "__init__.py"
        if path is None or name in seen:
            continue
        seen[name] = path
        parent = name.rpartition(".")[0] or "reprogrid"  # importing a submodule imports its package first
        pending += sorted((_imported(path) | {parent}) - set(seen))
    return tuple(sorted(set(seen.values())))


def run_code_files(user_files: dict[str, Path]) -> dict[str, Path]:
    """{label: path} of the code a run ran: the package's closure ("reprogrid/...") and
    the user's files (labelled as reprogrid.inputs.usercode labels them)."""
    files = {f"reprogrid/{path.relative_to(PACKAGE).as_posix()}": path for path in closure()}
    return dict(sorted((files | user_files).items()))


def checked_digests(files: dict[str, Path]) -> dict[str, str]:
    """{label: sha256} of each file, refusing one that changed since this process stamped it."""
    digests = {}
    for label, path in files.items():
        resolved = path.resolve()
        if resolved in _STAMPS and _stat(resolved) != _STAMPS[resolved]:
            raise CodeChanged(f"{path} changed on disk after this process (or the warm server it was forked from) "
                              "began to use it, so the code this run would record is not the code it ran; rerun "
                              "once the code stands still")
        digests[label] = _file_digest(resolved, _STAMPS.get(resolved))
    return digests


@functools.cache
def _file_digest(path: Path, stamp_: tuple[int, int] | None) -> str:
    """Cached by stamp: a warm server's children read each file once per invocation."""
    from reprogrid.record.hashing import file_digest  # NumPy: not for every job's thin client

    return file_digest(path)

