"""The built-in training loop gives, bit for bit, the results pinned in
tests/data/builtin_loop.json (by tests/pin_builtin_loop.py) for the kernels this machine
runs: the demo grid's and the ablation's reproducible cells. Pins are keyed by what
picks the kernels (torch, its CPU capability, the CPU's, the BLAS); where this machine's
key has no pin, the test says which and how to record it."""

import json

import pytest
import yaml
from pin_builtin_loop import CONFIGS, PINS, kernel_key, pinned_runs, results_of

PINNED = json.loads(PINS.read_text())


def test_pins_are_keyed_by_the_kernels_that_made_them():
    assert PINNED and all(key.startswith("torch ") and ", kernels " in key for key in PINNED)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_built_in_loop_gives_the_pinned_bits(name):
    key = kernel_key()
    if key not in PINNED:
        pytest.skip(f"no pinned bits for '{key}' (pinned: {'; '.join(sorted(PINNED))}); record them on this "
                    "machine with `python tests/pin_builtin_loop.py --add`")
    config = yaml.safe_load(CONFIGS[name].read_text())
    runs = dict(pinned_runs(config))
    assert sorted(runs) == sorted(PINNED[key][name])
    for run_key, run_config in runs.items():
        assert results_of(run_config) == PINNED[key][name][run_key], run_key


def final_bits(key: str, name: str, run_key: str) -> tuple[str, str]:
    run = PINNED[key][name][run_key]
    return run["epochs"][-1], run["predictions"]


def test_what_the_readme_says_threads_do_is_what_the_pins_hold():
    """README, "Reading summary.csv": 1 against 2 threads, same seeds, per pinned machine."""
    for key in PINNED:
        assert final_bits(key, "demo", "all_fixed/t1/r1") != final_bits(key, "demo", "all_fixed/t2/r1"), key
        mlp_differs = final_bits(key, "ablation", "control/t1/r1") != final_bits(key, "ablation", "control/t2/r1")
        assert mlp_differs == ("AuthenticAMD" in key), key
    assert {key.split(", ")[1] for key in PINNED if "AuthenticAMD" in key} == {"kernels avx2", "kernels avx512",
                                                                                "kernels default"}
    assert any("GenuineIntel with AMX" in key and "kernels avx512" in key for key in PINNED)
