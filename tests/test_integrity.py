"""Files damaged or forged after the step that wrote them: each is refused by name,
and nothing downstream silently uses it. A planted pickle never runs."""

import json
import pickle
import shutil

import numpy as np
import pytest

from conftest import run_snakemake
from reprogrid.compare import load_run
from reprogrid.hashing import file_digest
from reprogrid.records import IntegrityError, read_sealed, write_sealed
from reprogrid.steps.evaluate import run_evaluate

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
