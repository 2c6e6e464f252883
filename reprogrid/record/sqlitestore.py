"""A local SQLite MLflow store, looked at before MLflow opens it (MLflow runs its schema
migrations on any store whose tables are incomplete, even to read it).

- `inspect` reads the file read-only: its tables, its schema revision, how many runs it
  holds, and SQLite's quick_check of its pages.
- `create` builds a new store beside its final path and renames it into place once its
  schema is whole, so a first run killed while MLflow creates the tables (or a full disk)
  leaves no half-created store that blocks the directory.
- `problem` says in one line what is wrong with a store and what to do, given what MLflow
  knows of schema revisions (reprogrid.record.mlflow_store passes that in: this module does not
  import MLflow).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# SQLite's words for a damaged file; anything else (a full disk, permissions) is not damage
DAMAGE = ("malformed", "not a database", "corrupt", "integrity", "quick_check")


@dataclass
class Inspection:
    tables: set[str]
    revision: str | None  # alembic's version_num, None without it
    runs: int
    damage: str | None  # SQLite's quick_check, where it found the file damaged
    unreadable: str | None  # why it could not be read at all (a full disk, permissions)


def inspect(db: Path) -> Inspection:
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            checked = [row[0] for row in connection.execute("PRAGMA quick_check")]
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            revision = (connection.execute("SELECT version_num FROM alembic_version").fetchone() or [None])[0] \
                if "alembic_version" in tables else None
            runs = connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        damaged = any(word in str(error).lower() for word in DAMAGE)
        return Inspection(set(), None, 0, str(error) if damaged else None, None if damaged else str(error))
    damage = None if checked == ["ok"] else " ".join(checked[0].replace("*** in database main ***", "").split())
    return Inspection(tables, revision, runs, damage, None)


def problem(db: Path, found: Inspection, head: str, known: Callable[[str], bool], expected_tables: set[str],
            writing: bool) -> str | None:
    """What stops this store from being used, in one line; None when nothing does. A
    store that holds no tables (or is half-created and holds no runs) is no problem to a
    writer, which creates it anew (`set_aside` first where it is half-created)."""
    if found.unreadable:
        return f"the SQLite store {db} cannot be read ({found.unreadable}): check the disk (free space, permissions)"
    if found.damage:
        return (f"the SQLite store {db} is damaged (SQLite's quick_check: {found.damage}); restore it from a copy, "
                "or move it aside to start a new store")
    if not found.tables:
        return None if writing else (f"no MLflow store at {db}: the file holds no tables (a first run stopped while "
                                     "creating it?); run the workflow to create it, or delete the file")
    whole = expected_tables <= found.tables
    if found.revision == head and whole:
        return None
    if found.revision is not None and not known(found.revision):
        return (f"the MLflow store {db} was written by a newer MLflow (schema revision {found.revision}, unknown to "
                f"this MLflow, whose newest is {head}); use that MLflow version, or another store")
    if found.runs == 0:
        return None if writing else (f"the MLflow store {db} was left half-created (schema revision "
                                     f"{found.revision or 'none'}, a first run killed while creating it?) and holds "
                                     "no runs; the workflow recreates it, or delete the file")
    return (f"the MLflow store {db} holds {found.runs} runs under an older schema (revision {found.revision}, this "
            f"MLflow's is {head}); back it up, then upgrade it: mlflow db upgrade sqlite:///{db}")


def half_created(found: Inspection) -> bool:
    """Tables without runs, on a schema that is not whole: what a killed first run leaves."""
    return bool(found.tables) and found.runs == 0


def set_aside(db: Path) -> Path:
    """Move a store that holds nothing out of the way (kept, not deleted); its new name."""
    aside = db.with_name(f"{db.name}.half-created-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            os.replace(source, f"{aside}{suffix}")
    return aside


def create(db: Path, build: Callable[[str], None]) -> None:
    """Build a new store at a partial path (`build(sqlite_uri)` creates its schema), flush
    it, then rename it onto `db`: either no store or a whole one."""
    for left in db.parent.glob(f".{db.name}.creating-*"):  # what a creation killed earlier left
        left.unlink(missing_ok=True)
    # a name of its own: MLflow keeps a connection per URI, and this file is renamed away
    partial = db.with_name(f".{db.name}.creating-{os.getpid()}-{time.monotonic_ns()}")
    if db.exists() and not inspect(db).tables:  # an empty file: nothing to keep
        db.unlink()
    build(f"sqlite:///{partial}")
    descriptor = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(partial, db)


def relocate(db: Path, old_root: str, new_root: str) -> int:
    """Point the artifact locations a copied or moved store still has at its old home
    (`old_root`, a file URI) to its new one; how many experiments and runs changed. The
    artifacts travelled with the store (they live beside it); only the paths did not."""
    connection = sqlite3.connect(db, timeout=30)
    try:
        with connection:
            changed = 0
            for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
                changed += connection.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?",
                    (new_root, len(old_root) + 1, len(old_root), old_root)).rowcount
    finally:
        connection.close()
    return changed
