"""The randomness wiring, checked on real (tiny) training runs in this process."""

import numpy as np
import pytest
import torch

from conftest import tiny_config
from reprogrid import config as cfg
from reprogrid.config.seeds import derive_seeds, draw_unseeded
from reprogrid.evaluation.evaluator import evaluate_model
from reprogrid.inputs.data import load_split
from reprogrid.inputs.randomness import nudge_one_ulp
from reprogrid.training.contract import NumericalDivergence
from reprogrid.training.trainer import train_model


def trained(setting_modes=None, replicate=1, libconf=None, **config_changes):
    config = tiny_config(**config_changes)
    config["seed_settings"] = {"s": setting_modes or {}}
    config["library_configs"] = {"l": libconf or {}}
    run = cfg.resolve_run_config(config, "s", "l", replicate)
    seeds = draw_unseeded(derive_seeds(run["root_seed"], run["seed_modes"], replicate))
    split = load_split(run["dataset"], seeds["split"])
    return run, split, train_model(run, seeds, split)


def final(result):
    return result.epochs[-1]["weights"]


def test_same_seeds_give_bit_identical_training():
    _, _, a = trained()
    _, _, b = trained(replicate=2)  # every source fixed: replicate 2 draws what replicate 1 does
    assert a.init_weights == b.init_weights
    assert [e["weights"] for e in a.epochs] == [e["weights"] for e in b.epochs]


@pytest.mark.parametrize("source", ["init", "order", "dropout", "augment", "split", "ulp"])
def test_varying_one_source_changes_the_weights(source):
    _, _, a = trained({source: "vary"}, replicate=1)
    _, _, b = trained({source: "vary"}, replicate=2)
    assert final(a) != final(b)
    assert (a.init_weights != b.init_weights) == (source in ("init", "ulp"))


def test_unseeded_numpy_global_changes_augmentation_only_when_augmenting():
    libconf = {"seed_numpy_global": False}
    assert final(trained(libconf=libconf)[2]) != final(trained(libconf=libconf)[2])
    quiet = {"augment": {"noise_std": 0.0}}
    assert final(trained(libconf=libconf, **quiet)[2]) == final(trained(libconf=libconf, **quiet)[2])


def test_vae_sampling_source_matters():
    model = {"name": "vae", "hidden": [16], "latent": 2, "dropout": 0.0}
    _, _, a = trained({"sampling": "vary"}, replicate=1, model=model)
    _, _, b = trained({"sampling": "vary"}, replicate=2, model=model)
    _, _, c = trained({"sampling": "vary"}, replicate=1, model=model)
    assert final(a) != final(b)
    assert final(a) == final(c)


def test_vae_metrics_have_no_accuracy():
    run, split, result = trained(model={"name": "vae", "hidden": [16], "latent": 2})
    metrics, logits, labels = evaluate_model(result.model, run, split)
    assert "test_accuracy" not in metrics and metrics["test_loss"] > 0
    assert logits.shape == (len(labels), 64) and logits.dtype == np.float32


def test_classifier_metrics_match_the_logits():
    run, split, result = trained()
    metrics, logits, labels = evaluate_model(result.model, run, split)
    assert metrics["test_accuracy"] == pytest.approx(float((logits.argmax(1) == labels).mean()))


def test_ulp_nudge_moves_exactly_one_weight_by_one_ulp():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    nudge = nudge_one_ulp(model, seed=11)
    changed = [(k, (before[k] != v).nonzero()) for k, v in model.state_dict().items() if (before[k] != v).any()]
    assert len(changed) == 1 and len(changed[0][1]) == 1
    name, where = changed[0]
    old, new = before[name].view(-1)[nudge["index"]], model.state_dict()[name].view(-1)[nudge["index"]]
    assert name == nudge["parameter"]
    toward = torch.tensor(float("inf") if nudge["direction"] == "up" else float("-inf"))
    assert new == torch.nextafter(old, toward)


def test_float64_library_configuration_trains_in_float64():
    _, _, result = trained(libconf={"dtype": "float64"})
    assert all(p.dtype == torch.float64 for p in result.model.parameters())


def test_data_loader_workers_are_seeded_from_the_augment_source():
    libconf = {"num_workers": 1}
    assert final(trained(libconf=libconf)[2]) == final(trained(libconf=libconf)[2])


def test_a_run_whose_loss_becomes_non_finite_fails_naming_the_epoch():
    with pytest.raises(NumericalDivergence, match=r"run s/l/r1: train_loss became (nan|inf) in epoch \d"):
        trained(training={"epochs": 3, "batch_size": 64, "optimizer": "sgd", "lr": 1e30, "momentum": 0.9})
