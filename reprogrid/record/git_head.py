"""The commit checked out in the git repository holding a directory, read from `.git`'s
files (no `git` process: every training job asks). For MLflow's `mlflow.source.git.commit`:
it names the commit, not the working tree; what ran is `reprogrid.hash.code`."""

from __future__ import annotations

import re
from pathlib import Path

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1, or SHA-256 repositories


def _git_dir(start: Path) -> Path | None:
    """The repository's git directory: `.git` itself, or where a worktree's `.git` file points."""
    for directory in (start, *start.parents):
        dot_git = directory / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            text = dot_git.read_text().strip()
            if text.startswith("gitdir:"):
                return (directory / text.removeprefix("gitdir:").strip()).resolve()
            return None
    return None


def _resolved(git_dir: Path, ref: str) -> str | None:
    # a worktree keeps its HEAD; branches live in the common directory
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    for base in (git_dir, common):
        loose = base / ref
        if loose.is_file():
            value = loose.read_text().strip()
            return value if _SHA.fullmatch(value) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            value, _, name = line.partition(" ")
            if name == ref and _SHA.fullmatch(value):
                return value
    return None


def head_commit(directory: str | Path) -> str | None:
    """The commit HEAD names in the repository holding `directory`; None outside a
    repository, on an unborn branch, or where `.git` cannot be read."""
    try:
        git_dir = _git_dir(Path(directory).resolve())
        if git_dir is None:
            return None
        head = (git_dir / "HEAD").read_text().strip()
        if head.startswith("ref:"):
            return _resolved(git_dir, head.removeprefix("ref:").strip())
        return head if _SHA.fullmatch(head) else None  # detached
    except (OSError, UnicodeDecodeError):
        return None
