import numpy as np
import pytest

from reprogrid.config import DEFAULT_MODES, SOURCES
from reprogrid.config.seeds import derive_seed, derive_seeds, draw_unseeded, source_id


def modes(**changes):
    return {**DEFAULT_MODES, **changes}


def test_seeds_come_from_seed_sequence_with_source_and_replicate_in_the_spawn_key():
    seeds = derive_seeds(1234, modes(init="vary"), replicate=3)
    expected_init = np.random.SeedSequence(1234, spawn_key=(source_id("init"), 3))
    expected_order = np.random.SeedSequence(1234, spawn_key=(source_id("order"), 0))
    assert seeds["init"]["seed"] == int(expected_init.generate_state(1, dtype=np.uint32)[0])
    assert seeds["order"]["seed"] == int(expected_order.generate_state(1, dtype=np.uint32)[0])


def test_changing_one_sources_mode_never_moves_another_sources_seed():
    base = derive_seeds(1234, modes(), replicate=2)
    for source in SOURCES:
        other_mode = "vary"
        changed = derive_seeds(1234, modes(**{source: other_mode}), replicate=2)
        for other in SOURCES:
            if other != source:
                assert changed[other] == base[other], (source, other)
        assert changed[source]["seed"] != base[source]["seed"]


def test_fixed_sources_repeat_across_replicates_and_varied_ones_do_not():
    runs = [derive_seeds(99, modes(order="vary"), replicate=r) for r in range(1, 6)]
    assert len({run["init"]["seed"] for run in runs}) == 1
    assert len({run["order"]["seed"] for run in runs}) == 5


def test_sources_have_distinct_streams():
    seeds = derive_seeds(5, modes(), replicate=1)
    assert len({entry["seed"] for entry in seeds.values()}) == len(SOURCES)


def test_root_seed_changes_every_seed():
    a, b = derive_seeds(1, modes(), 1), derive_seeds(2, modes(), 1)
    assert all(a[s]["seed"] != b[s]["seed"] for s in SOURCES)


def test_unseeded_sources_get_their_seed_only_when_the_run_starts():
    seeds = derive_seeds(5, modes(dropout="unseeded"), replicate=1)
    assert seeds["dropout"] == {"mode": "unseeded", "seed": None}
    first, second = draw_unseeded(seeds), draw_unseeded(seeds)
    assert first["dropout"] != second["dropout"]  # 1 in 2**32 chance of a false failure
    assert first["init"] == second["init"] == seeds["init"]["seed"]
    assert 0 <= first["dropout"] < 2**32


def test_seeds_fit_every_consumer():
    for replicate in range(1, 50):
        for entry in derive_seeds(2**62, modes(init="vary"), replicate).values():
            np.random.seed(entry["seed"])  # NumPy's legacy seed is the narrowest: < 2**32


def test_replicates_count_from_one():
    with pytest.raises(ValueError, match="counted from 1"):
        derive_seeds(1, modes(), 0)


def test_derive_seed_is_a_pure_function():
    assert derive_seed(3, "init", 4) == derive_seed(3, "init", 4)
