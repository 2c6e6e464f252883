"""The pieces of a checkpoint: every kind of generator and state survives a round trip
through a file loaded with weights_only=True, equal and different states are told
apart, and a fit that misuses run.resumable gets a clear error."""

import hashlib
import random

import numpy as np
import pytest
import torch

from reprogrid import config as cfg
from reprogrid.config import ConfigError, check_config
from reprogrid.inputs.data import load_split
from reprogrid.record.sealed import read_sealed, write_sealed
from reprogrid.training import checkpoint, resume, states
from reprogrid.training.context import Run
from reprogrid.training.contract import FitError, Interrupted

GENERATORS = {
    "python": lambda: random.Random(3),
    "numpy": lambda: np.random.default_rng(3),
    "numpy_mt19937": lambda: np.random.Generator(np.random.MT19937(3)),  # a state of arrays
    "numpy_philox": lambda: np.random.Generator(np.random.Philox(3)),  # of uint64 arrays
    "numpy_legacy": lambda: np.random.RandomState(3),
    "torch": lambda: torch.Generator().manual_seed(3),
}


def draw(generator) -> float:
    if isinstance(generator, torch.Generator):
        return float(torch.rand(1, generator=generator))
    return float(generator.random() if not isinstance(generator, np.random.RandomState) else generator.rand())


@pytest.mark.parametrize("kind", GENERATORS)
def test_a_generator_state_survives_a_weights_only_file_and_continues_the_stream(kind, tmp_path):
    original = GENERATORS[kind]()
    draw(original)
    torch.save({"state": states.generator_state(original)}, tmp_path / "c.pt")
    restored = GENERATORS[kind]()  # a fresh one, at its start
    states.set_generator_state(restored, torch.load(tmp_path / "c.pt", weights_only=True)["state"])
    assert [draw(restored) for _ in range(3)] == [draw(original) for _ in range(3)]


def test_the_global_generators_are_captured_and_restored():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    saved = states.global_states(cuda=False)
    expected = (random.random(), np.random.random(), float(torch.rand(1)))
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    for name, state in saved.items():
        states.restore_global(name, state)
    assert (random.random(), np.random.random(), float(torch.rand(1))) == expected


def test_states_that_differ_are_named_with_where_they_first_differ():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    before = {"optimizer": optimizer.state_dict(), "model": {"w": torch.zeros(2)}}
    import copy

    after = copy.deepcopy(before)
    after["optimizer"]["param_groups"][0]["lr"] = 0.05
    assert states.differing(before, copy.deepcopy(before)) == []
    assert states.differing(before, after) == ["optimizer"]
    assert states.first_difference(before["optimizer"], after["optimizer"]) == "['param_groups'][0]['lr']"
    assert states.differing(before, {"model": before["model"]}) == ["optimizer"]  # missing counts


def test_generators_a_loop_holds_are_found_by_their_path():
    class Augment:
        def __init__(self):
            self.rng = np.random.default_rng(0)

    known = torch.Generator()
    found = states.reachable_generators(
        {"jitter": random.Random(1), "pipeline": [Augment()], "known": known, "count": 3}, {id(known)})
    assert sorted(found) == ["jitter", "pipeline[0].rng"]


def tiny_run(checkpoints=None, epochs: int = 3, every: int = 1, interval_s: float = 0):
    config = {"run_key": "s/l/r1", "library": {"device": "cpu", "dtype": "float32", "num_workers": 0,
                                               "seed_workers": True, "seed_python_random": True,
                                               "seed_numpy_global": True, "interrupt_after_epoch": None},
              "model": {"name": "mlp", "hidden": [4], "dropout": 0.0},
              "seed_modes": {"ulp": "off"}, "training": {"epochs": epochs, "checkpoint_every": every,
                                                                   "checkpoint_interval_s": interval_s}}
    seeds = dict.fromkeys(["split", "init", "order", "dropout", "augment", "sampling", "ulp"], 1)
    return Run(config, seeds, load_split({"name": "digits", "test_fraction": 0.2}, 1), checkpoints)


def test_a_generator_without_state_is_not_taken_for_one():
    assert not states.is_generator(random.SystemRandom())
    assert states.reachable_generators({"entropy": random.SystemRandom()}, set()) == {}


class Clock:
    """resume's clock, moved on by hand: an epoch takes what the test says, not what the machine does."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def epochs_checkpointed(tmp_path, epoch_seconds: float = 0.0, interrupt: int | None = None, **run_options) -> list:
    """The epochs a 5-epoch run checkpoints, each epoch taking `epoch_seconds` of resume's clock."""
    clock = Clock()
    files = checkpoint.CheckpointFiles(tmp_path, lambda: {"run": "x"})
    epochs_written = []
    original = files.write
    files.write = lambda epoch, payload: epochs_written.append(epoch) or original(epoch, payload)
    run = tiny_run(files, epochs=5, **run_options)
    run.config["library"]["interrupt_after_epoch"] = interrupt
    model = run.model()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resume, "time", clock)
        run.resumable(model=model)
        try:
            for epoch in range(1, 6):
                clock.now += epoch_seconds
                run.epoch_end(model, epoch)
        except Interrupted:
            pass
    assert run.checkpointing["written"] == len(epochs_written)
    return epochs_written


@pytest.mark.parametrize("every, written", [(1, [1, 2, 3, 4]), (2, [2, 4]), (0, [])])
def test_checkpoint_every_sets_which_epochs_are_checkpointed(every, written, tmp_path):
    assert epochs_checkpointed(tmp_path, every=every) == written  # never the last: train.json follows


def test_by_default_at_most_one_checkpoint_a_minute_and_always_the_interrupted_epoch(tmp_path):
    assert cfg.CHECKPOINT_INTERVAL_S == 60
    assert epochs_checkpointed(tmp_path / "a", interval_s=cfg.CHECKPOINT_INTERVAL_S) == []  # a run of seconds
    assert epochs_checkpointed(tmp_path / "b", interval_s=cfg.CHECKPOINT_INTERVAL_S, interrupt=3) == [3]


def test_the_interval_counts_from_the_last_checkpoint(tmp_path):
    # epochs of 10 s, at most one checkpoint every 25 s from the loop's start: epoch 3 (30 s), then
    # epoch 6 would be next (epoch 5 is the last, never checkpointed)
    assert epochs_checkpointed(tmp_path, epoch_seconds=10, interval_s=25) == [3]
    assert epochs_checkpointed(tmp_path / "b", epoch_seconds=10, interval_s=15) == [2, 4]


def test_an_unregistered_generator_is_named_before_any_checkpoint_is_due(tmp_path, caplog):
    """The warning does not wait for a checkpoint: a short run writes none."""
    files = checkpoint.CheckpointFiles(tmp_path, lambda: {"run": "x"})
    run = tiny_run(files, epochs=5, interval_s=cfg.CHECKPOINT_INTERVAL_S)
    model = run.model()
    jitter = random.Random(3)  # noqa: F841 - held by this frame, not given to run.resumable
    run.resumable(model=model)
    run.epoch_end(model, 1)
    assert run.checkpointing["written"] == 0 and run.checkpointing["unregistered"] == ["jitter"]
    assert "holds the generator `jitter`" in caplog.text


def test_an_unreadable_checkpoint_is_ignored_with_the_reason(tmp_path):
    files = checkpoint.CheckpointFiles(tmp_path, lambda: {"run": "x"})
    files.write(1, {"epoch": 1})
    (tmp_path / "checkpoint-e1.pt").write_bytes(b"not a checkpoint")
    index = read_sealed(tmp_path / "checkpoint.json")  # sealed to match: only loading can tell
    write_sealed(tmp_path / "checkpoint.json", {**index, "sha256": hashlib.sha256(b"not a checkpoint").hexdigest()})
    payload, why = files.latest()
    assert payload is None and why.startswith(f"checkpoint ignored: {tmp_path / 'checkpoint-e1.pt'} cannot be loaded")


def test_what_run_gives_out_after_resumable_is_refused():
    run = tiny_run()
    model = run.model()
    run.resumable(model=model)
    with pytest.raises(FitError, match=r"after run.resumable; a resumed run could not restore it"):
        run.torch_generator("dropout")


def test_resumable_refuses_what_it_cannot_checkpoint_and_a_second_call():
    run = tiny_run()
    model = run.model()
    with pytest.raises(FitError, match=r"run.resumable\(data=...\): a list has no state_dict"):
        run.resumable(model=model, data=[1, 2])
    run = tiny_run()
    assert run.resumable(model=run.model()) == 1  # nothing to resume from: the first epoch
    with pytest.raises(FitError, match="called twice"):
        run.resumable(model=model)


def test_an_interrupt_at_or_after_the_last_epoch_is_refused_by_key():
    config = {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "training": {"epochs": 4},
              "seed_settings": {"s": {}}, "library_configs": {"late": {"interrupt_after_epoch": 4}}}
    with pytest.raises(ConfigError, match=r"library_configs.late.interrupt_after_epoch: 4 is not before the last "
                                          r"epoch \(training.epochs is 4\)"):
        check_config(config)


def written_checkpoint(tmp_path):
    """A genuine checkpoint of epoch 1 (of 3) in tmp_path, and its files."""
    files = checkpoint.CheckpointFiles(tmp_path, lambda: {"run": "x"})
    run = tiny_run(files)
    model = run.model()
    run.resumable(model=model)
    run.epoch_end(model, 1)
    return files


def reseal(tmp_path, **changes):
    """An index edited and sealed again (the seal has no key: anyone can)."""
    index = read_sealed(tmp_path / "checkpoint.json")
    write_sealed(tmp_path / "checkpoint.json", {**index, **changes})


@pytest.mark.parametrize("named", ["../victim.txt", "/tmp/reprogrid-victim.txt", "train.json"])
def test_an_index_naming_a_file_outside_the_checkpoints_deletes_nothing(tmp_path, named):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    written_checkpoint(run_dir)
    victim = (run_dir / named) if not named.startswith("/") else tmp_path / "victim.txt"
    victim.write_text("precious")
    reseal(run_dir, file=str(victim) if named.startswith("/") else named)
    payload, why = checkpoint.CheckpointFiles(run_dir, lambda: {"run": "x"}).latest()
    assert payload is None and "not a checkpoint of this run's own" in why
    written_checkpoint(run_dir)  # the run's next training writes its own checkpoint over the index
    assert victim.read_text() == "precious"


def test_a_damaged_payload_or_a_forged_model_is_not_resumed_from(tmp_path):
    written_checkpoint(tmp_path)
    path = tmp_path / "checkpoint-e1.pt"
    payload = torch.load(path, weights_only=True)

    def forge(changed: dict) -> str:
        buffer = __import__("io").BytesIO()
        torch.save(changed, buffer)
        path.write_bytes(buffer.getvalue())
        reseal(tmp_path, sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
        found, why = checkpoint.CheckpointFiles(tmp_path, lambda: {"run": "x"}).latest()
        assert found is None
        return why

    assert forge({k: v for k, v in payload.items() if k != "seeds"}).endswith("lacks what a resume needs "
                                                                                "(its epoch, seeds and pieces)")
    forged = {**payload, "pieces": {**payload["pieces"], "model": {
        name: tensor + 1 for name, tensor in payload["pieces"]["model"].items()}}}
    assert forge(forged).endswith("holds a model that is not the one its own epoch record fingerprints")
