"""The prediction, table-driven: which configurations the tool expects to reproduce bit
for bit across replicates (`expect_bitwise`) and on a rerun of the same replicate
(`expect_rerun_bitwise`)."""

import pytest

from conftest import tiny_config
from reprogrid.config import resolve_run_config
from reprogrid.training.prediction import active_sources, expect_bitwise, expect_rerun_bitwise, varied_sources

MLP = {"name": "mlp", "hidden": [8], "dropout": 0.1}
CASES = [
    # (why, seed modes, library knobs, model, augment noise, expect_bitwise, expect_rerun_bitwise)
    ("everything fixed", {}, {}, MLP, 0.05, True, True),
    ("init varies between replicates, a rerun draws its seed again", {"init": "vary"}, {}, MLP, 0.05, False, True),
    ("order left unseeded", {"order": "unseeded"}, {}, MLP, 0.05, False, False),
    ("a one-ULP nudge varies", {"ulp": "vary"}, {}, MLP, 0.05, False, True),
    ("augmentation draws from an unseeded NumPy global", {}, {"seed_numpy_global": False}, MLP, 0.05, False, False),
    ("no augmentation: the unseeded global is never drawn", {}, {"seed_numpy_global": False}, MLP, 0.0, True, True),
    ("augmentation in workers: seeded by the loader", {}, {"seed_numpy_global": False, "num_workers": 2}, MLP,
     0.05, True, True),
    ("augment varies but nothing augments", {"augment": "vary"}, {}, MLP, 0.0, True, True),
    ("dropout varies but the model has none", {"dropout": "vary"}, {}, {**MLP, "dropout": 0.0}, 0.05, True, True),
    ("dropout varies", {"dropout": "vary"}, {}, MLP, 0.05, False, True),
    ("sampling varies but an MLP never samples", {"sampling": "vary"}, {}, MLP, 0.05, True, True),
    ("sampling varies in a VAE", {"sampling": "vary"}, {}, {"name": "vae", "hidden": [8], "latent": 2}, 0.0,
     False, True),
    ("CUDA without deterministic algorithms", {}, {"device": "cuda"}, MLP, 0.05, False, False),
    ("CUDA with deterministic algorithms", {}, {"device": "cuda", "deterministic_algorithms": True}, MLP, 0.05,
     True, True),
    ("auto may find a GPU", {}, {"device": "auto"}, MLP, 0.05, False, False),
    ("CUDA deterministic but cuDNN benchmarking: kernels chosen by timing", {},
     {"device": "cuda", "deterministic_algorithms": True, "cudnn_benchmark": True}, MLP, 0.05, False, False),
    ("two threads: no source varies, so predicted bitwise", {}, {"threads": 2}, MLP, 0.05, True, True),
]


@pytest.mark.parametrize("why, modes, knobs, model, noise, bitwise, rerun_bitwise", CASES,
                         ids=[case[0] for case in CASES])
def test_the_prediction(why, modes, knobs, model, noise, bitwise, rerun_bitwise):
    config = tiny_config(seed_settings={"s": modes}, library_configs={"l": knobs}, model=model,
                         augment={"noise_std": noise})
    run_config = resolve_run_config(config, "s", "l", 1)
    assert expect_bitwise(run_config) is bitwise
    assert expect_rerun_bitwise(run_config) is rerun_bitwise


def test_only_sources_actually_drawn_count():
    run_config = resolve_run_config(tiny_config(model={**MLP, "dropout": 0.0}, augment={"noise_std": 0.0},
                                                seed_settings={"s": {"dropout": "vary", "init": "vary"}}), "s", "t1", 1)
    assert active_sources(run_config) == ["split", "init", "order", "ulp"]
    assert varied_sources(run_config) == ["init"]


def test_a_run_on_auto_is_predicted_from_the_device_it_resolved_to():
    run_config = resolve_run_config(tiny_config(library_configs={"l": {"device": "auto"}}), "all_fixed", "l", 1)
    assert not expect_bitwise(run_config)  # before it runs, auto may find a GPU
    assert expect_bitwise(run_config, device="cpu") and not expect_bitwise(run_config, device="cuda")


def test_a_cell_is_predicted_bitwise_when_every_run_is():
    from reprogrid.training.prediction import cell_expects_bitwise

    assert cell_expects_bitwise([True, True]) and not cell_expects_bitwise([True, False])
    assert not cell_expects_bitwise([False, True]) and not cell_expects_bitwise([])
