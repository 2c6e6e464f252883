"""The built-in training loop gives, bit for bit, the results pinned in
tests/data/builtin_loop.json (by tests/pin_builtin_loop.py, before the loop became one
`fit` among others): the demo grid's and the ablation's reproducible cells."""

import json
from pathlib import Path

import pytest
import yaml
from pin_builtin_loop import CONFIGS, cpu_model, pinned_runs, results_of

PINNED = json.loads((Path(__file__).parent / "data" / "builtin_loop.json").read_text())


@pytest.mark.skipif(cpu_model() != PINNED["cpu_model"],
                    reason=f"pinned on {PINNED['cpu_model']}; another CPU model may take other kernels")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_built_in_loop_gives_the_pinned_bits(name):
    config = yaml.safe_load(CONFIGS[name].read_text())
    runs = dict(pinned_runs(config))
    assert sorted(runs) == sorted(PINNED["runs"][name])
    for key, run_config in runs.items():
        assert results_of(run_config) == PINNED["runs"][name][key], key
