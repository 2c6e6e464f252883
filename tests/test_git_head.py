"""The commit a run's working directory is at, read from `.git` as `git` itself resolves
it: a branch (loose or packed), a detached HEAD, a worktree; nothing outside a repository."""

import shutil
import subprocess

import pytest

from reprogrid.record.git_head import head_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(directory, *args) -> str:
    return subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repository(tmp_path):
    root = tmp_path / "project"
    (root / "src" / "deep").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.org")
    git(root, "config", "user.name", "t")
    (root / "train.py").write_text("print(1)\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_a_branch_head_is_read_from_any_directory_below_the_root(repository):
    assert head_commit(repository / "src" / "deep") == git(repository, "rev-parse", "HEAD")


def test_a_packed_branch_and_a_detached_head(repository):
    (repository / "train.py").write_text("print(2)\n")
    git(repository, "commit", "-qam", "second")
    git(repository, "pack-refs", "--all")
    assert not (repository / ".git" / "refs" / "heads" / "main").exists()
    assert head_commit(repository) == git(repository, "rev-parse", "HEAD")
    first = git(repository, "rev-parse", "HEAD~1")
    git(repository, "checkout", "-q", "--detach", first)
    assert head_commit(repository) == first


def test_a_worktree_reads_its_own_head(repository, tmp_path):
    (repository / "train.py").write_text("print(3)\n")
    git(repository, "commit", "-qam", "on main")
    git(repository, "worktree", "add", "-q", "-b", "other", str(tmp_path / "tree"), "HEAD~1")
    assert head_commit(tmp_path / "tree") == git(tmp_path / "tree", "rev-parse", "HEAD")
    assert head_commit(tmp_path / "tree") != head_commit(repository)


def test_nothing_outside_a_repository_or_before_the_first_commit(tmp_path):
    outside = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--git-dir"], capture_output=True)
    if outside.returncode == 0:
        pytest.skip(f"{tmp_path} is inside a git repository here")
    assert head_commit(tmp_path) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert head_commit(empty) is None
