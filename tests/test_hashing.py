import hashlib
import subprocess
import sys
import textwrap

import numpy as np
import torch

from reprogrid.hashing import (
    arrays_digest,
    canonical_json,
    code_digest,
    config_digest,
    data_digest,
    predictions_digest,
    weights_digest,
)


def test_canonical_json_sorts_keys_and_drops_spaces():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert config_digest({"b": 1, "a": 2}) == config_digest({"a": 2, "b": 1})


def test_predictions_digest_is_logits_bytes_then_labels_bytes():
    logits = np.arange(6, dtype=np.float32).reshape(2, 3)
    labels = np.array([1, 0])
    expected = hashlib.sha256(logits.tobytes() + labels.astype(np.int64).tobytes()).hexdigest()
    assert predictions_digest(logits, labels) == expected


def test_array_digests_see_shape_and_dtype_not_just_bytes():
    flat = np.zeros(4, dtype=np.float32)
    assert arrays_digest([("a", flat)]) != arrays_digest([("a", flat.reshape(2, 2))])
    assert arrays_digest([("a", flat)]) != arrays_digest([("a", flat.view(np.int32))])
    assert arrays_digest([("a", flat)]) != arrays_digest([("b", flat)])


def test_data_digest_depends_on_which_examples_are_held_out():
    x, y = np.eye(4, dtype=np.float32), np.arange(4)
    assert data_digest(x[:3], y[:3], x[3:], y[3:]) != data_digest(x[1:], y[1:], x[:1], y[:1])


def test_weights_digest_sees_a_one_ulp_change():
    state = {"w": torch.ones(3)}
    nudged = {"w": torch.tensor([1.0, torch.nextafter(torch.tensor(1.0), torch.tensor(2.0)), 1.0])}
    assert weights_digest(state) != weights_digest(nudged)


def test_weights_digest_is_stable_across_processes():
    script = textwrap.dedent("""
        import torch
        from reprogrid.hashing import weights_digest
        torch.manual_seed(0)
        print(weights_digest(torch.nn.Linear(5, 3).state_dict()))
    """)
    outputs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    torch.manual_seed(0)
    assert outputs == {weights_digest(torch.nn.Linear(5, 3).state_dict()) + "\n"}


def test_code_digest_follows_file_content_and_names(tmp_path):
    package, workflow = tmp_path / "reprogrid", tmp_path / "checkout"
    package.mkdir()
    (workflow / "workflow" / "rules").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (workflow / "Snakefile").write_text("rule all:\n")
    (workflow / "workflow" / "rules" / "train.smk").write_text("rule train:\n")
    (workflow / "notes.txt").write_text("not code")
    before = code_digest(package, workflow)
    assert code_digest(package, None) != before  # the workflow counts
    (workflow / "notes.txt").write_text("still not code")
    assert code_digest(package, workflow) == before
    (workflow / "workflow" / "rules" / "train.smk").write_text("rule train:  # edited\n")
    edited_rule = code_digest(package, workflow)
    assert edited_rule != before
    (package / "a.py").write_text("x = 2\n")
    edited = code_digest(package, workflow)
    assert edited != edited_rule
    (package / "a.py").rename(package / "b.py")
    assert code_digest(package, workflow) != edited
