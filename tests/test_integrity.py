"""Files damaged or forged after the step that wrote them: each is refused by name,
and nothing downstream silently uses it. A planted pickle never runs."""

import json
import pickle
import shutil

import numpy as np
import pytest

from conftest import run_snakemake
from reprogrid.analysis.runs import load_run
from reprogrid.evaluation.evaluate_run import run_evaluate
from reprogrid.record.hashing import file_digest
from reprogrid.record.sealed import IntegrityError, read_sealed, write_sealed

pytestmark = pytest.mark.workflow
KEY = "all_fixed/t1/r1"


@pytest.fixture
def copied(grid, tmp_path):
    """A copy of the session's grid that a test may damage."""
    workdir = tmp_path / "grid"
    shutil.copytree(grid, workdir)
    return workdir


def run_dir(workdir, key=KEY):
    return workdir / "results" / "runs" / key


def evaluate_again(workdir, key=KEY):
    d = run_dir(workdir, key)
    return run_evaluate(d / "train.json", d / "model.pt", workdir / "results" / "tracking.json",
                        d / "eval.json", d / "predictions.npz", d / "weights.npy")


def test_a_truncated_train_json_is_named(copied):
    path = run_dir(copied) / "train.json"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(IntegrityError, match="train.json: not valid JSON"):
        load_run(run_dir(copied))
    with pytest.raises(IntegrityError, match="truncated or damaged"):
        evaluate_again(copied)


def test_an_edited_train_json_is_named(copied):
    path = run_dir(copied) / "train.json"
    record = json.loads(path.read_text())
    record["train_seconds"] = 0.001  # a one-number forgery keeps valid JSON
    path.write_text(json.dumps(record))
    with pytest.raises(IntegrityError, match="train.json: its content does not match its recorded sha256"):
        load_run(run_dir(copied))


@pytest.mark.parametrize("name", ["predictions.npz", "weights.npy"])
def test_altered_evaluation_files_are_named(copied, name):
    path = run_dir(copied) / name
    if name == "predictions.npz":
        with np.load(path) as stored:
            logits, labels = stored["logits"].copy(), stored["labels"]
        logits[0, 0] += 1.0
        np.savez(path, logits=logits, labels=labels)
    else:
        path.write_bytes(path.read_bytes()[:-8])  # truncated
    with pytest.raises(IntegrityError, match=f"{name}: its sha256 is not the one"):
        load_run(run_dir(copied))


def test_compare_refuses_an_altered_predictions_file(copied):
    path = run_dir(copied) / "predictions.npz"
    path.write_bytes(path.read_bytes() + b"\0")
    done = run_snakemake(copied, "--cores", "1", "--configfile", "config.yaml", "--forcerun", "compare")
    assert done.returncode != 0
    log = (copied / "results" / "logs" / "compare.log").read_text()
    assert f"{KEY}/predictions.npz: its sha256 is not the one" in log


def test_a_truncated_model_is_named_before_it_is_loaded(copied):
    path = run_dir(copied) / "model.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IntegrityError, match="model.pt: its sha256 is not"):
        evaluate_again(copied)


class Payload:
    """Unpickling this writes a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_planted_pickle_does_not_run_even_with_a_matching_record(copied, tmp_path):
    marker = tmp_path / "code-ran"
    model = run_dir(copied) / "model.pt"
    with open(model, "wb") as handle:
        pickle.dump({"weight": Payload(marker)}, handle, protocol=2)
    # the forger also rewrites train.json to match the planted file and reseals it
    record = read_sealed(run_dir(copied) / "train.json")
    record["files"]["model.pt"] = file_digest(model)
    write_sealed(run_dir(copied) / "train.json", record)
    with pytest.raises(IntegrityError, match="refused to load: it is not a plain state_dict"):
        evaluate_again(copied)
    assert not marker.exists()
    assert read_sealed(run_dir(copied) / "eval.json")["run_key"] == KEY  # the old record stays intact


def forge_compare(copied) -> str:
    """Run compare on the forged copy; return its log (it must have failed)."""
    done = run_snakemake(copied, "--cores", "1", "--configfile", "config.yaml", "--forcerun", "compare")
    assert done.returncode != 0, "compare accepted a forged run"
    return (copied / "results" / "logs" / "compare.log").read_text()


def test_a_resealed_eval_json_with_a_forged_metric_is_refused(copied):
    """The seal is an unkeyed sha256: anyone who edits eval.json can reseal it. Compare
    recomputes the metrics from the predictions, so the forgery is still refused."""
    path = run_dir(copied) / "eval.json"
    record = read_sealed(path)
    record["metrics"]["test_accuracy"] = 1.0
    write_sealed(path, {k: v for k, v in record.items() if k != "record_sha256"})
    assert read_sealed(path)["metrics"]["test_accuracy"] == 1.0  # the seal itself is satisfied
    log = forge_compare(copied)
    assert f"{KEY}/eval.json: its metrics are not what its predictions give (test_accuracy: recorded 1.0" in log


def test_forged_predictions_with_a_consistent_resealed_eval_json_are_refused_by_the_mlflow_record(copied):
    """A forger who rewrites the predictions and everything in eval.json that hashes them
    is caught by the MLflow run that recorded the run when it was evaluated."""
    directory = run_dir(copied)
    with np.load(directory / "predictions.npz") as stored:
        logits, labels = stored["logits"].copy(), stored["labels"]
    wrong = logits.argmax(axis=1) != labels
    logits[wrong, labels[wrong]] = 1e6  # every example now "correct"
    np.savez(directory / "predictions.npz", logits=logits, labels=labels)
    record = read_sealed(directory / "eval.json")
    from reprogrid.analysis.recompute import metrics_from
    from reprogrid.record.hashing import predictions_digest

    record["metrics"] |= metrics_from(logits, labels, "classification", "auto")
    record["hashes"]["predictions"] = predictions_digest(logits, labels)
    record["files"]["predictions.npz"] = file_digest(directory / "predictions.npz")
    write_sealed(directory / "eval.json", {k: v for k, v in record.items() if k != "record_sha256"})
    assert load_run(directory).metrics["test_accuracy"] == 1.0  # consistent on disk
    log = forge_compare(copied)
    assert f"{KEY}: its files disagree with MLflow run" in log and "predictions, test_accuracy" in log


def damage_a_page(database) -> int:
    """Overwrite part of the first page whose damage SQLite's own check can see (bytes in
    a page's unused space are invisible to any check); return its number."""
    import sqlite3

    original = database.read_bytes()
    for page in range(1, len(original) // 4096):
        damaged = bytearray(original)
        damaged[page * 4096 + 8: page * 4096 + 72] = bytes(range(64))
        database.write_bytes(bytes(damaged))
        connection = sqlite3.connect(database)
        try:
            seen = connection.execute("PRAGMA quick_check").fetchall() != [("ok",)]
        except sqlite3.DatabaseError:
            seen = True
        finally:
            connection.close()
        if seen:
            return page
    raise AssertionError("no page's damage was visible to SQLite")


def test_a_damaged_store_is_refused_before_the_grid_runs(copied):
    import sqlite3

    database = copied / "results" / "mlflow.db"
    with sqlite3.connect(database) as connection:  # fold the write-ahead log into the file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = damage_a_page(database)
    done = run_snakemake(copied, "--cores", "1", "--configfile", "config.yaml", "--forcerun", "compare")
    assert done.returncode != 0
    assert "results/mlflow.db is damaged (SQLite's quick_check:" in done.stderr, done.stderr[-2000:]
    assert "Finished jobid" not in done.stderr  # refused before any job ran
    print(f"\nreliability: a store with page {page} damaged is refused before any job runs")


def test_audit_and_replay_on_a_truncated_store_exit_2_with_one_line(copied):
    import subprocess

    from conftest import SNAKEMAKE

    database = copied / "results" / "mlflow.db"
    database.write_bytes(database.read_bytes()[:len(database.read_bytes()) // 2])
    for database_sidecar in copied.glob("results/mlflow.db-*"):
        database_sidecar.unlink()
    for command in (["audit"], ["replay", "0123456789abcdef0123456789abcdef"]):
        done = subprocess.run([str(SNAKEMAKE.with_name("reprogrid")), *command], cwd=copied, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.count("\n") == 1 and "is damaged" in done.stderr, done.stderr[-2000:]


def test_two_writers_of_one_path_never_write_into_each_others_partial(tmp_path):
    """Each writer has a partial of its own: the file ends as one writer's whole text."""
    import threading
    import time

    from reprogrid.record.sealed import write_atomically

    target = tmp_path / "summary.csv"
    started = threading.Barrier(2)

    def slow_writer(text: str):
        def write(partial):
            with open(partial, "w") as handle:
                handle.write(text[: len(text) // 2])
                started.wait(timeout=10)  # both are half-way through their partial now
                time.sleep(0.05)
                handle.write(text[len(text) // 2:])
        write_atomically(target, write)

    texts = ["a" * 100_000, "b" * 100_000]
    writers = [threading.Thread(target=slow_writer, args=(text,)) for text in texts]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]  # no partial left behind
