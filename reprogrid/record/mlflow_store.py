"""The MLflow store: clients, the checks a store passes before anything opens it (a local
SQLite file, reprogrid.record.sqlitestore; a server's health), its creation, the
experiment and the grid it expects. With reprogrid.record.mlflow_runs (a run's record,
written and read), the only code that talks to MLflow: everything else hands them plain
data. mlflow is imported inside the functions (about a second), so importing this module
is free for callers that never log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import sqlite3
import time
from pathlib import Path

# Store errors that a retry resolves: SQLite's write lock, and a lost race to insert
# the same row (MLflow looks a dataset up, then inserts it: two runs logging the same
# dataset at once collide; the second attempt finds it).
TRANSIENT_ERRORS = ("database is locked", "UNIQUE constraint failed", "duplicate key value")
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)


def retrying(call, *args, **kwargs):
    """Run one MLflow write, retrying with backoff when it failed for a transient reason.

    Every write retried here is one database transaction: a failed attempt left nothing
    behind, so a retry cannot duplicate it.
    """
    from mlflow.exceptions import MlflowException

    for delay in (*RETRY_DELAYS, None):
        try:
            return call(*args, **kwargs)
        except MlflowException as error:
            if delay is None or not any(t in str(error) for t in TRANSIENT_ERRORS):
                raise
            time.sleep(delay * (1 + random.random()))


def now_ms() -> int:
    return int(time.time() * 1000)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI, or None for other stores."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


def check_sqlite_store(uri: str, writing: bool = False) -> None:
    """Refuse a local SQLite store that cannot be used, in one line, before MLflow opens it
    (reprogrid.record.sqlitestore): damaged, unreadable, written by a newer MLflow, on an older
    schema with runs; and, to a reader, one that is empty or half-created (a writer creates
    it anew). Other stores, and a store not created yet, pass."""
    from reprogrid.record import sqlitestore

    db = sqlite_path(uri)
    if db is None or not db.is_file():
        return
    reason = sqlitestore.problem(db, sqlitestore.inspect(db), *_schema_knowledge(), writing)
    if reason:
        raise StoreError(reason)


def _schema_knowledge():
    """(this MLflow's newest schema revision, whether it knows a revision, its tables)."""
    import mlflow.store.tracking.dbmodels.models  # noqa: F401 - registers the tables with Base
    from alembic.script import ScriptDirectory
    from mlflow.store.db.base_sql_model import Base
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    script = ScriptDirectory.from_config(_get_alembic_config(db_url=""))

    def known(revision: str) -> bool:
        try:
            return script.get_revision(revision) is not None
        except Exception:  # noqa: BLE001 - alembic's CommandError for an unknown id
            return False

    return _get_latest_schema_revision(), known, set(Base.metadata.tables)


SERVER_TIMEOUT_ENV = "REPROGRID_TRACKING_TIMEOUT"


def check_server(uri: str) -> None:
    """Before a grid fans out: a tracking server must answer its health check within
    REPROGRID_TRACKING_TIMEOUT seconds (default 10). MLflow's own client retries for
    minutes per call, so an unreachable server would otherwise stall every job."""
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    timeout = float(os.environ.get(SERVER_TIMEOUT_ENV, "10"))
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as answer:
            answer.read(64)
    except urllib.error.HTTPError as error:
        raise StoreError(f"the tracking server at {uri} answered its health check with HTTP {error.code}") from None
    except (OSError, ValueError) as error:  # refused, unresolvable, or silent past the timeout
        raise StoreError(f"the tracking server at {uri} does not answer within {timeout:g} s ({error}); start it, "
                         f"or set {SERVER_TIMEOUT_ENV} to wait longer") from None


def client(uri: str):
    from mlflow.tracking import MlflowClient

    if uri.startswith(("http://", "https://")):
        bound_http_retries()
    return MlflowClient(tracking_uri=uri)


def bound_http_retries() -> None:
    """MLflow retries a failing HTTP call 7 times with growing backoff, each attempt
    waiting up to 120 s: a server that dies mid-grid would stall every job for minutes.
    One retry a second later, each attempt waiting REPROGRID_TRACKING_TIMEOUT at most (a
    dead server refuses at once), unless the user set MLflow's own variables."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", f"{max(1, round(float(os.environ.get(SERVER_TIMEOUT_ENV, '10'))))}")


@contextlib.contextmanager
def store_creation_lock(uri: str):
    """Serialise MLflow's first-time schema creation across processes for a local SQLite
    store: two grids starting at once on a new store otherwise race in its migrations
    ("Online migration expected to match one row")."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(f".{db.name}.reprogrid-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def opened_store_client(uri: str):
    """A client whose store exists (created now if new, one process at a time; a local
    SQLite store is built aside and renamed into place whole, and one left half-created
    by a killed first run, holding no runs, is set aside first)."""
    from reprogrid.record import sqlitestore

    with store_creation_lock(uri):
        db = sqlite_path(uri)
        if db is not None:
            found = sqlitestore.inspect(db) if db.is_file() else None
            if found is not None and sqlitestore.half_created(found) and found.revision != _schema_knowledge()[0]:
                logging.getLogger("reprogrid").warning(
                    "the MLflow store %s was left half-created and holds no runs: moved to %s, a new one is created",
                    db, sqlitestore.set_aside(db))
                found = None
            if found is None or not found.tables:
                sqlitestore.create(db, lambda partial: retrying(client(partial).search_experiments, max_results=1))
        mlflow_client = client(uri)
        retrying(mlflow_client.search_experiments, max_results=1)
    return mlflow_client


# MLflow 3's UI lists the experiment as "Machine learning" (its kind); which view an
# experiment opens on is the browser's choice, so the address reprogrid prints names it
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def prepare_experiment(uri: str, experiment: str) -> str:
    """Create the store and the experiment if needed; return the experiment id.

    Called once, before jobs fan out: concurrent first-time schema creation on SQLite
    races. A local SQLite store keeps its artifacts beside the database
    (`<db dir>/mlartifacts`) and is switched to WAL so readers never block writers.
    """
    from mlflow.exceptions import MlflowException

    db = sqlite_path(uri)
    artifact_location = None
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        artifact_location = (db.parent / "mlartifacts").resolve().as_uri()
    check_sqlite_store(uri, writing=True)
    check_server(uri)
    mlflow_client = opened_store_client(uri)
    found = mlflow_client.get_experiment_by_name(experiment)
    if db is not None:
        connection = sqlite3.connect(db)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()
    if found is not None and artifact_location and found.artifact_location != artifact_location \
            and found.artifact_location.endswith("/mlartifacts"):  # ours, from where the store used to be
        from reprogrid.record import sqlitestore

        changed = sqlitestore.relocate(db, found.artifact_location, artifact_location)
        logging.getLogger("reprogrid").warning("the store was copied or moved from %s: %d artifact locations "
                                               "now point at %s", found.artifact_location, changed, artifact_location)
        found = mlflow_client.get_experiment_by_name(experiment)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise RuntimeError(
                f"MLflow experiment {experiment!r} at {uri} is deleted; restore it "
                "(`mlflow experiments restore`) or choose another `experiment` name"
            )
        if EXPERIMENT_KIND not in found.tags:  # recorded before reprogrid marked its experiments
            retrying(mlflow_client.set_experiment_tag, found.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(experiment, artifact_location=artifact_location,
                                               tags={EXPERIMENT_KIND: MODEL_TRAINING})
    except MlflowException:  # another process created it in between
        found = mlflow_client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


GRID_TAG = "reprogrid.grid"
MAX_EXPERIMENT_TAG = 20000  # MLflow's limit on an experiment tag's value


class StoreError(RuntimeError):
    """The store, an experiment, a run or an artifact cannot be read; a one-line reason."""


def existing_store_client(uri: str):
    """A client for a store that must exist already: reading never creates one."""
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise StoreError(f"no MLflow store at {db} (tracking URI {uri}); "
                         "pass --tracking-uri or set MLFLOW_TRACKING_URI")
    return client(uri)


def _reading(what: str):
    """Turn MLflow's and the network's errors into one-line StoreErrors naming `what`."""
    from contextlib import contextmanager

    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    @contextmanager
    def guard():
        try:
            yield
        except (MlflowException, SQLAlchemyError) as error:
            reason = str(error).splitlines()[0][:300]
            raise StoreError(f"{what}: {reason}") from None
        except OSError as error:
            raise StoreError(f"{what}: cannot reach the store ({error})") from None

    return guard()


def set_grid(mlflow_client, experiment_id: str, grid: dict) -> None:
    """Record the grid's expected cells and replicates on the experiment, in as many
    tags as MLflow's size limit needs (reprogrid.grid.0, .1, ... and .parts)."""
    text = json.dumps(grid, sort_keys=True, separators=(",", ":"))
    parts = [text[i:i + MAX_EXPERIMENT_TAG] for i in range(0, len(text), MAX_EXPERIMENT_TAG)] or [""]
    for index, part in enumerate(parts):
        retrying(mlflow_client.set_experiment_tag, experiment_id, f"{GRID_TAG}.{index}", part)
    retrying(mlflow_client.set_experiment_tag, experiment_id, f"{GRID_TAG}.parts", str(len(parts)))


def find_experiment(mlflow_client, name: str | None) -> tuple[str, str, dict | None]:
    """(id, name, recorded grid) of the named experiment, or of the only one holding a
    reprogrid grid when no name is given."""
    with _reading("experiments"):
        if name is not None:
            found = mlflow_client.get_experiment_by_name(name)
            if found is None:
                raise StoreError(f"no MLflow experiment named {name!r}")
            candidates = [found]
        else:
            candidates = [e for e in mlflow_client.search_experiments() if f"{GRID_TAG}.parts" in e.tags]
            if len(candidates) != 1:
                names = ", ".join(repr(e.name) for e in candidates) or "none"
                raise StoreError(f"name the experiment with --experiment (reprogrid grids found: {names})")
    experiment = candidates[0]
    tags = experiment.tags
    grid = None
    if f"{GRID_TAG}.parts" in tags:
        parts = int(tags[f"{GRID_TAG}.parts"])
        grid = json.loads("".join(tags[f"{GRID_TAG}.{i}"] for i in range(parts)))
    return experiment.experiment_id, experiment.name, grid


