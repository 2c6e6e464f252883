"""The CUDA knobs, checked on the CPU where no GPU is at hand: applied, recorded and
hashed; `auto` falls back to the CPU and says so. GPU runs are skipped with a reason
where torch sees no GPU, never faked."""

import warnings

import pytest
import torch

from conftest import tiny_config
from reprogrid.config import LIBRARY_DEFAULTS, resolve_run_config
from reprogrid.inputs import library
from reprogrid.record.environment import environment_record, record_digest
from reprogrid.training.prediction import expect_bitwise
from reprogrid.training.train_run import logged_warnings

GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch sees none here")


def knobs(**changes) -> dict:
    return {**LIBRARY_DEFAULTS, **changes}


@pytest.fixture
def restored(monkeypatch):
    """apply_library changes process-wide state (torch flags, os.environ): put it back,
    or later tests' workflow runs inherit CUBLAS_WORKSPACE_CONFIG and hash differently."""
    import os

    before = os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    monkeypatch.setattr(library, "_CUDA_ENV", {})
    yield
    library.apply_library(knobs())
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    if before is not None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = before


def test_auto_falls_back_to_the_cpu_and_records_it(restored):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: auto resolves to cuda")
    effective = library.apply_library(knobs(device="auto"))
    assert effective["device"] == "cpu" and "cuda" not in effective
    assert library.mismatches(knobs(device="auto"), effective)["device"] == ["auto", "cpu"]


def test_the_cublas_workspace_is_set_before_cuda_starts_and_that_is_recorded(restored):
    import os

    effective = library.apply_library(knobs(cublas_workspace_config=":16:8"))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert effective["cublas_workspace_config"] == ":16:8"
    assert effective["cuda_environment"]["CUBLAS_WORKSPACE_CONFIG"] == {
        "value": ":16:8", "set_before_cuda_started": not torch.cuda.is_initialized()}


def test_deterministic_algorithms_on_cuda_get_the_workspace_they_need():
    assert library.cublas_workspace(knobs(device="cuda", deterministic_algorithms=True)) == ":4096:8"
    assert library.cublas_workspace(knobs(device="cuda")) is None
    assert library.cublas_workspace(knobs(device="cpu", deterministic_algorithms=True)) is None


def test_every_knob_is_read_back_and_changes_the_library_hash(restored):
    def env_hash(**changes):
        effective = library.apply_library(knobs(**changes))
        return effective, record_digest(effective)

    base, base_hash = env_hash()
    for change in ({"cudnn_allow_tf32": False}, {"cudnn_benchmark": True}, {"cudnn_deterministic": True},
                   {"matmul_precision": "high"}, {"deterministic_algorithms": True, "warn_only": True}):
        effective, digest = env_hash(**change)
        assert digest != base_hash, change
        assert all(effective[k] == v for k, v in change.items()), (change, effective)
    assert base["cuda_matmul_allow_tf32"] is False  # "highest": no TF32 in float32 matmuls


def test_warn_only_warnings_are_kept_for_the_record():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("scatter_add_cuda_kernel does not have a deterministic implementation", UserWarning, stacklevel=1)
        warnings.warn("something unrelated", DeprecationWarning, stacklevel=1)
    assert logged_warnings(caught) == ["scatter_add_cuda_kernel does not have a deterministic implementation"]


def test_a_gpu_run_is_predicted_bitwise_only_with_deterministic_algorithms():
    config = tiny_config(library_configs={"plain": {"device": "auto"}, "det": {"device": "auto",
                                                                              "deterministic_algorithms": True}})
    assert not expect_bitwise(resolve_run_config(config, "all_fixed", "plain", 1))
    assert expect_bitwise(resolve_run_config(config, "all_fixed", "det", 1))


@GPU
def test_deterministic_cuda_runs_repeat_bit_for_bit(restored):
    from reprogrid.config.seeds import derive_seeds, draw_unseeded
    from reprogrid.inputs.data import load_split
    from reprogrid.record.hashing import weights_digest
    from reprogrid.training.trainer import train_model

    config = tiny_config(model={"name": "cnn", "channels": [8, 16], "dropout": 0.1},
                         library_configs={"det": {"device": "cuda", "deterministic_algorithms": True}})
    run_config = resolve_run_config(config, "all_fixed", "det", 1)
    effective = library.apply_library(run_config["library"])
    assert effective["device"] == "cuda" and environment_record()["gpu"]["gpu"]
    seeds = draw_unseeded(derive_seeds(7, run_config["seed_modes"], 1))
    split = load_split(run_config["dataset"], seeds["split"])
    digests = {weights_digest(train_model(run_config, seeds, split).model.state_dict()) for _ in range(2)}
    assert len(digests) == 1


def test_the_gpu_example_is_refused_clearly_without_a_gpu():
    import yaml

    from conftest import REPO
    from reprogrid.config import ConfigError
    from reprogrid.steps.preflight import check_inputs

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the example is valid")
    config = yaml.safe_load((REPO / "config" / "examples" / "gpu.yaml").read_text())
    with pytest.raises(ConfigError, match="config key library_configs.default.device: asks for cuda, but torch sees no"):
        check_inputs(config)
