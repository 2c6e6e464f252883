"""The RNG trace: which global generators a phase drew from, and loader workers that
start from one same state."""

import random

import numpy as np
import pytest
import torch

from conftest import tiny_config
from reprogrid import config as cfg
from reprogrid.config.seeds import derive_seeds, draw_unseeded
from reprogrid.inputs import rngtrace
from reprogrid.inputs.data import load_split
from reprogrid.training.context import Run

DRAWS = {
    "python": lambda: random.random(),
    "numpy": lambda: np.random.standard_normal(3),
    "torch": lambda: torch.rand(3),
}


def drawn_by(phase) -> list[str]:
    before = rngtrace.snapshot()
    phase()
    return rngtrace.advanced(before, rngtrace.snapshot())


@pytest.mark.parametrize("generator", sorted(DRAWS))
def test_a_phase_that_draws_from_one_generator_names_exactly_it(generator):
    assert drawn_by(DRAWS[generator]) == [generator]


def test_a_phase_that_draws_from_none_is_empty():
    own = np.random.default_rng(1)
    assert drawn_by(lambda: (own.random(3), torch.rand(3, generator=torch.Generator().manual_seed(1)), 2 + 2)) == []


def test_phases_drawing_from_several_are_named_in_a_fixed_order():
    assert drawn_by(lambda: (torch.rand(1), random.random(), np.random.rand())) == ["python", "numpy", "torch"]


def test_the_duplication_detector_fires_on_shared_states_and_not_on_distinct_ones():
    a, b, c = ({"python": p, "numpy": n, "torch": t} for p, n, t in (("p1", "n1", "t1"), ("p1", "n2", "t2"),
                                                                    ("p3", "n3", "t2")))
    assert rngtrace.duplicated([a, b, c]) == ["python", "torch"]
    assert rngtrace.duplicated([a, {"python": "p9", "numpy": "n9", "torch": "t9"}]) == []
    assert rngtrace.duplicated([a]) == []


def same_python_state(worker_id):
    random.seed(0)


def run_with_workers(init_fn) -> Run:
    config = tiny_config(library_configs={"w2": {"threads": 1, "num_workers": 2}})
    run_config = cfg.resolve_run_config(config, "all_fixed", "w2", 1)
    seeds = draw_unseeded(derive_seeds(run_config["root_seed"], run_config["seed_modes"], 1))
    run = Run(run_config, seeds, load_split(run_config["dataset"], seeds["split"]))
    model = run.model()
    for _ in run.loader(run.train_data, batch_size=256, shuffle=True, worker_init_fn=init_fn):
        pass
    run.epoch_end(model, 1)
    run.finish(model)
    return run


def test_loader_workers_started_in_one_state_are_detected_and_distinct_ones_are_not():
    trapped = run_with_workers(same_python_state)
    assert trapped.worker_starts == 2 and trapped.worker_duplicates == ["python"]
    healthy = run_with_workers(None)  # PyTorch seeds each worker differently
    assert healthy.worker_starts == 2 and healthy.worker_duplicates == []


def test_worker_reports_are_drained_every_epoch_so_no_worker_waits_to_exit():
    """Hundreds of worker starts (4 workers x 120 epochs is 480): each report must leave the
    queue's pipe before the pipe fills, or a worker process cannot exit."""
    import multiprocessing

    from reprogrid.training.workers import WorkerStarts

    config = tiny_config(library_configs={"w4": {"threads": 1, "num_workers": 4}})
    run_config = cfg.resolve_run_config(config, "all_fixed", "w4", 1)
    seeds = draw_unseeded(derive_seeds(run_config["root_seed"], run_config["seed_modes"], 1))
    run = Run(run_config, seeds, load_split(run_config["dataset"], seeds["split"]))
    model = run.model()
    run.loader(run.train_data, batch_size=256)  # makes the report queue, as for a real loader
    report = WorkerStarts(None, run._worker_reports.queue)
    context = multiprocessing.get_context("fork")
    for epoch in range(1, 61):  # 480 worker starts, 8 an epoch
        workers = [context.Process(target=report, args=(i,)) for i in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=20)
            assert worker.exitcode == 0, f"a worker of epoch {epoch} could not exit"
        run.epoch_end(model, epoch)
    run.finish(model)
    assert run.worker_starts == 480
