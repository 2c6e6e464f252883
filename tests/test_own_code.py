"""The user's own model, data and loss: factories and files, and every way they can be
wrong, each caught before any run with a message naming the config key."""

import itertools
import re

import numpy as np
import pytest
import torch

from conftest import tiny_config, user_package
from reprogrid.config import ConfigError, check_config, resolve_run_config
from reprogrid.config.seeds import derive_seeds, draw_unseeded
from reprogrid.inputs.data import load_split
from reprogrid.inputs.usercode import factory_source_files
from reprogrid.record.hashing import code_digest, file_digest
from reprogrid.steps.preflight import check_inputs, run_preflight
from reprogrid.training.trainer import train_model

COUNTER = itertools.count()

USER_CODE = '''
import numpy as np
import torch
from torch import nn


def blobs(n=120, features=3, classes=2, as_datasets=False):
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((n, features)).astype(np.float32) + y[:, None]
    if as_datasets:
        data = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
        return torch.utils.data.Subset(data, range(90)), torch.utils.data.Subset(data, range(90, n))
    return x[:90], y[:90], x[90:], y[90:]


def net(inputs=3, outputs=2):
    return nn.Sequential(nn.Linear(inputs, 8), nn.ReLU(), nn.Linear(8, outputs))


def absolute_loss(outputs, targets):
    return (outputs.squeeze(-1) - targets).abs().mean()


def broken(**kwargs):
    raise RuntimeError("no data today")


def not_a_model(**kwargs):
    return "a model"


def three_things():
    return 1, 2, 3


def vector_loss(outputs, targets):
    return outputs.sum(dim=1)


NOT_CALLABLE = 42
'''


@pytest.fixture
def own(tmp_path, monkeypatch):
    """A fresh user package in the working directory; its name is unique per test so
    the import cache cannot leak between tests."""
    monkeypatch.chdir(tmp_path)
    return user_package(tmp_path, f"userpkg{next(COUNTER)}", "code", USER_CODE)


def own_config(pkg, dataset=None, model=None, training=None):
    return tiny_config(
        dataset=dataset or {"factory": f"{pkg}.code:blobs"},
        model=model or {"factory": f"{pkg}.code:net", "kwargs": {"inputs": 3, "outputs": 2}},
        training={"epochs": 1, "batch_size": 16, **(training or {})},
        library_configs={"t1": {}},
    )


@pytest.mark.parametrize("as_datasets", [False, True])
def test_a_factory_dataset_is_read_as_it_yields(own, as_datasets):
    config = own_config(own, dataset={"factory": f"{own}.code:blobs", "kwargs": {"as_datasets": as_datasets}})
    run_preflight(config)
    split = load_split(resolve_run_config(config, "all_fixed", "t1", 1)["dataset"], 5)
    assert split.task == "classification" and split.x_train.shape == (90, 3) and split.y_test.dtype == np.int64


def test_the_init_seed_governs_the_factory_model_and_the_code_hash_covers_it(own):
    from reprogrid.inputs import randomness
    from reprogrid.inputs.models import build_model

    model = {"factory": f"{own}.code:net", "kwargs": {}}
    weights = []
    for seed in (1, 1, 2):
        randomness.seed_init({"init": seed})
        weights.append(build_model(model, 2)[0].weight.detach().clone())
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    files = factory_source_files([f"{own}.code:net"])
    assert set(files) == {f"user:{own}/__init__.py", f"user:{own}/code.py"}
    before = code_digest({label: file_digest(path) for label, path in files.items()})
    files[f"user:{own}/code.py"].write_text(USER_CODE + "\n# edited\n")
    assert code_digest({label: file_digest(path) for label, path in files.items()}) != before


def test_a_csv_file_with_a_float_target_is_a_regression(own, tmp_path):
    rows = "\n".join(f"{i / 10},{(i % 7) / 3},{i * 0.5 + 1.25}" for i in range(40))
    (tmp_path / "table.csv").write_text("a,b,value\n" + rows + "\n")
    config = own_config(own, dataset={"path": "table.csv", "target": "value"},
                        model={"factory": f"{own}.code:net", "kwargs": {"inputs": 2, "outputs": 1}},
                        training={"loss": f"{own}.code:absolute_loss", "optimizer": "adamw", "lr_schedule": "cosine"})
    check_config(config)
    check_inputs(config)
    run_preflight(config)
    dataset = resolve_run_config(config, "all_fixed", "t1", 1)["dataset"]
    split = load_split(dataset, 3)
    assert split.task == "regression" and split.y_train.dtype == np.float32
    assert split.file["size"] == (tmp_path / "table.csv").stat().st_size and len(split.file["sha256"]) == 64
    assert len(split.y_test) == 8  # test_fraction 0.2 of 40 rows


@pytest.mark.parametrize("model", [{"name": "mlp", "hidden": [8], "dropout": 0.0},
                                   {"name": "cnn", "channels": [2, 4], "dropout": 0.0}])
def test_built_in_models_take_their_input_width_from_the_data(own, tmp_path, model):
    rows = "\n".join(f"{i % 3},{i % 5},{i % 7},{i % 2},{i % 2}" for i in range(30))
    (tmp_path / "four.csv").write_text("a,b,c,d,y\n" + rows + "\n")  # 4 features: a 2x2 image for the CNN
    config = own_config(own, dataset={"path": "four.csv", "target": "y"}, model=model)
    check_inputs(config)
    run_preflight(config)  # builds the model and runs it on the data
    run_config = resolve_run_config(config, "all_fixed", "t1", 1)
    seeds = draw_unseeded(derive_seeds(run_config["root_seed"], run_config["seed_modes"], 1))
    result = train_model(run_config, seeds, load_split(run_config["dataset"], seeds["split"]))
    assert len(result.epochs) == run_config["training"]["epochs"]


def test_a_cnn_on_data_that_is_not_square_images_is_refused_by_name(own, tmp_path):
    (tmp_path / "five.csv").write_text("a,b,c,d,e,y\n" + "\n".join(f"1,2,3,4,5,{i % 2}" for i in range(10)) + "\n")
    config = own_config(own, dataset={"path": "five.csv", "target": "y"},
                        model={"name": "cnn", "channels": [2, 4], "dropout": 0.0})
    with pytest.raises(ConfigError) as caught:
        run_preflight(config)
    assert str(caught.value).startswith("config key model.name:") and "square images" in str(caught.value)


def csv(tmp_path, text: str, name="data.csv"):
    (tmp_path / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return name


# (what is wrong, how the config says it, the key the message must name, words it must say)
BROKEN = [
    ("module missing", {"dataset": {"factory": "nosuchpkg.data:load"}}, "dataset.factory", "cannot import module"),
    ("attribute missing", {"dataset": {"factory": "{pkg}.code:nothing"}}, "dataset.factory", "has no attribute"),
    ("not callable", {"dataset": {"factory": "{pkg}.code:NOT_CALLABLE"}}, "dataset.factory", "not a function"),
    ("factory raises", {"dataset": {"factory": "{pkg}.code:broken"}}, "dataset.factory", "raised RuntimeError: no data today"),
    ("wrong return", {"dataset": {"factory": "{pkg}.code:three_things"}}, "dataset.factory", "must return (X_train"),
    ("model raises", {"model": {"factory": "{pkg}.code:broken"}}, "model.factory", "raised RuntimeError"),
    ("not a module", {"model": {"factory": "{pkg}.code:not_a_model"}}, "model.factory", "not a torch.nn.Module"),
    ("model and data disagree", {"model": {"factory": "{pkg}.code:net", "kwargs": {"inputs": 5}}},
     "model.factory", "cannot take the data"),
    ("too few outputs", {"model": {"factory": "{pkg}.code:net", "kwargs": {"outputs": 1}}},
     "model.factory", "must output (2, 2)"),
    ("loss not found", {"training": {"loss": "{pkg}.code:nope"}}, "training.loss", "has no attribute"),
    ("loss not a number", {"training": {"loss": "{pkg}.code:vector_loss"}}, "training.loss", "single-number tensor"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_own_code_gets_one_clear_message(own, case):
    _, changes, key, words = case
    changes = {k: {kk: (vv.format(pkg=own) if isinstance(vv, str) else vv) for kk, vv in v.items()}
               for k, v in changes.items()}
    config = own_config(own, **changes)
    if "kwargs" not in config["model"] and "factory" in config["model"]:
        config["model"]["kwargs"] = {}
    with pytest.raises(ConfigError) as caught:
        run_preflight(config)
    message = str(caught.value)
    assert message.startswith(f"config key {key}:") and words in message, message


BROKEN_FILES = [
    ("missing", None, {"path": "absent.csv", "target": "y"}, "dataset.path", "does not exist"),
    ("empty", b"", {"target": "y"}, "dataset.path", "is empty"),
    ("header only", "a,y\n", {"target": "y"}, "dataset.path", "no rows"),
    ("no target column", "a,b\n1,2\n", {"target": "y"}, "dataset.target", "'y' is not a column"),
    ("target not named", "a,y\n1,2\n", {}, "dataset.target", "name the CSV column"),
    ("unreadable", b"\xff\xfe\x00garbage\x00\n\x01", {"target": "y"}, "dataset.path", "cannot read"),
    ("text feature", "a,y\nred,1\n", {"target": "y"}, "dataset.path", "not numeric"),
    ("negative labels", "a,y\n1,-1\n2,0\n", {"target": "y"}, "dataset.task", "integers 0, 1, 2"),
    ("npz without x", None, {"path": "data.npz"}, "dataset.path", "must hold arrays 'x'"),
    ("empty feature cell", "a,b,y\n1,2,0\n3,,1\n", {"target": "y"}, "dataset.path",
     "column 'b' is empty on line 3"),
    ("empty label cell", "a,y\n1,0\n2,\n", {"target": "y"}, "dataset.path", "column 'y' is empty on line 3"),
    ("infinite feature", "a,y\n1,0\ninf,1\n", {"target": "y"}, "dataset.path", "inf at index [1, 0]"),
    ("unknown format", "x", {"path": "data.parquet"}, "dataset.path", "only .csv and .npz"),
]


@pytest.mark.parametrize("case", BROKEN_FILES, ids=[c[0] for c in BROKEN_FILES])
def test_a_broken_data_file_is_named_when_the_config_is_checked(own, tmp_path, case):
    _, content, dataset, key, words = case
    if content is not None:
        csv(tmp_path, content, dataset.get("path", "data.csv"))
    if dataset.get("path") == "data.npz":
        np.savez(tmp_path / "data.npz", features=np.zeros((3, 2)), y=np.zeros(3))
    config = own_config(own, dataset={"path": "data.csv", **dataset})
    check_config(config)  # the vocabulary is fine: it is the file that is not
    with pytest.raises(ConfigError) as caught:
        check_inputs(config)
    message = str(caught.value)
    assert message.startswith(f"config key {key}:") and words in message, message


@pytest.mark.parametrize("labels, problem", [
    ([3] * 40, "every training label is 3: one class, so accuracy would be 1.0"),
    ([0, 100000] * 20, "the labels are 2 classes spread over codes 0 to 100000 (99,999 codes no example has)"),
])
def test_labels_a_classifier_cannot_learn_from_honestly_are_refused(labels, problem):
    from reprogrid.inputs.usercode import detect_task

    with pytest.raises(ConfigError, match=r"config key dataset.path: " + re.escape(problem)):
        detect_task("auto", np.array(labels), "dataset.path")
