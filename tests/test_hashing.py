import hashlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from reprogrid.record.hashing import (
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
        from reprogrid.record.hashing import weights_digest
        torch.manual_seed(0)
        print(weights_digest(torch.nn.Linear(5, 3).state_dict()))
    """)
    outputs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    torch.manual_seed(0)
    assert outputs == {weights_digest(torch.nn.Linear(5, 3).state_dict()) + "\n"}


def test_code_digest_follows_file_content_and_names():
    before = code_digest({"reprogrid/a.py": "1" * 64, "user:pkg/b.py": "2" * 64})
    assert code_digest({"user:pkg/b.py": "2" * 64, "reprogrid/a.py": "1" * 64}) == before  # label order
    assert code_digest({"reprogrid/a.py": "3" * 64, "user:pkg/b.py": "2" * 64}) != before  # content
    assert code_digest({"reprogrid/c.py": "1" * 64, "user:pkg/b.py": "2" * 64}) != before  # a rename


def test_the_code_a_run_ran_is_the_training_closure_not_the_report():
    from reprogrid.record import provenance

    labels = set(provenance.run_code_files({}))
    assert {"reprogrid/training/context.py", "reprogrid/training/loop.py", "reprogrid/training/train_run.py",
            "reprogrid/evaluation/evaluator.py", "reprogrid/__init__.py"} <= labels
    assert not labels & {"reprogrid/report/render.py", "reprogrid/investigate/grid_audit.py",
                         "reprogrid/analysis/comparison.py", "reprogrid/cli.py"}


def test_a_file_edited_after_the_process_began_to_use_it_is_refused(tmp_path):
    import os

    from reprogrid.record import provenance

    source = tmp_path / "mod.py"
    source.write_text("x = 1\n")
    provenance.stamp([source])
    assert provenance.checked_digests({"user:mod.py": source})["user:mod.py"]
    source.write_text("x = 22\n")
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(provenance.CodeChanged, match=r"mod.py changed on disk after this process"):
        provenance.checked_digests({"user:mod.py": source})
