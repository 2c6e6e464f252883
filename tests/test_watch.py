"""The watch of a command run, from inside an unchanged script: seeding calls with their
file:line (in DataLoader workers too), the first draw from NumPy's global generator, the
optimizer's fingerprints per step, the library configuration applied before line one."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, tiny_config
from reprogrid import config as cfg
from reprogrid.analysis.divergence import first_divergent_step
from reprogrid.watch import ENVIRONMENT
from reprogrid.watch.journal import Journal, read
from reprogrid.watch.seeding import EXACT_CALLS
from reprogrid.watch.steps import Fingerprinter, StepWatch, due, fingerprint, next_due

SCRIPT = textwrap.dedent("""\
    import argparse

    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    x = torch.randn(256, 8)
    y = (x.sum(1) > 0).long()


    def seed_worker(worker_id):
        np.random.seed(1000 + worker_id)


    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, num_workers=args.workers,
                        worker_init_fn=seed_worker if args.workers else None)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        for xb, yb in loader:
            xb = xb + torch.from_numpy(np.random.normal(0, 0.01, xb.shape).astype("float32"))
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""")
LINE = {text: number for number, text in enumerate(SCRIPT.splitlines(), 1)}
SEED_LINE = LINE["torch.manual_seed(args.seed)"]
AUGMENT_LINE = next(n for t, n in LINE.items() if "np.random.normal" in t)
WORKER_SEED_LINE = LINE["    np.random.seed(1000 + worker_id)"]


def watched(tmp_path: Path, name: str, seeds: dict, *args: str, threads: int = 1) -> Path:
    """Run the script as `python train.py ARGS` with the watch on; its record folder."""
    (tmp_path / "train.py").write_text(SCRIPT)
    record = tmp_path / name
    record.mkdir()
    library = cfg.library_knobs(tiny_config(library_configs={"t": {"threads": threads}}), "t")
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps({"record_dir": str(record), "seeds": seeds, "library": library}))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "reprogrid" / "watch" / "site"), str(REPO)]))
    environment[ENVIRONMENT] = str(spec)
    done = subprocess.run([sys.executable, "train.py", *args], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return record


def watched_script(tmp_path: Path, script: str) -> Path:
    """Run `python SCRIPT` in tmp_path with the watch on and no generator seeded by it; its record folder."""
    record = tmp_path / "run"
    record.mkdir()
    library = cfg.library_knobs(tiny_config(library_configs={"t": {"threads": 1}}), "t")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"record_dir": str(record), "library": library,
                                "seeds": {"torch": None, "numpy": None, "python": None}}))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "reprogrid" / "watch" / "site"), str(REPO)]))
    environment[ENVIRONMENT] = str(spec)
    done = subprocess.run([sys.executable, script], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return record


def test_the_schedule_records_every_early_step_then_about_16_per_doubling():
    recorded = [s for s in range(1, 4097) if due(s)]
    assert recorded[:64] == list(range(1, 65))
    assert all(14 <= len([s for s in recorded if 2 ** k < s <= 2 ** (k + 1)]) <= 17 for k in range(6, 12))


def test_fingerprints_kept_views_read_the_parameters_as_they_are_now():
    torch = pytest.importorskip("torch")
    parameters = list(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)).parameters())
    kept = Fingerprinter()
    assert kept(parameters) == fingerprint(parameters)
    before = kept(parameters)
    with torch.no_grad():
        parameters[0].add_(1.0)  # in place, as an optimizer steps
    assert kept(parameters) == fingerprint(parameters) != before
    parameters[1].data = parameters[1].data * 2  # other memory
    assert kept(parameters) == fingerprint(parameters)
    parameters[2].data = parameters[2].data.to(torch.bfloat16)  # another dtype
    assert kept(parameters) == fingerprint(parameters)


def test_the_next_due_step_is_the_schedules_next():
    for step in range(0, 20000):
        following = next_due(step)
        assert following > step and due(following) and not any(due(s) for s in range(step + 1, following))


def test_fingerprints_copied_to_be_hashed_at_exit_are_those_of_the_parameters_then():
    torch = pytest.importorskip("torch")
    parameters = list(torch.nn.Linear(8, 8).parameters())
    then, now = fingerprint(parameters), Fingerprinter()
    copied = now.later(parameters)
    with torch.no_grad():
        parameters[0].add_(1.0)
    assert isinstance(copied, bytes) and now.digest(copied) == then != fingerprint(parameters)
    over_budget = Fingerprinter(budget=100)  # 288 bytes of parameters: hashed at once
    assert over_budget.later(parameters) == fingerprint(parameters)


def test_an_optimizer_is_fingerprinted_once_before_its_first_step_even_if_that_step_raised(tmp_path):
    torch = pytest.importorskip("torch")
    made_by_torch = torch.optim.Optimizer.__init__
    steps = StepWatch(Journal(tmp_path, os.getpid()))
    handles = steps.install(torch)
    try:
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        def no_loss_yet():
            raise RuntimeError("no loss yet")

        with pytest.raises(RuntimeError):
            optimizer.step(no_loss_yet)
        model(torch.ones(1, 2)).sum().backward()
        optimizer.step()
        optimizer.step()
    finally:
        torch.optim.Optimizer.__init__ = made_by_torch
        for handle in handles:
            handle.remove()
    assert [step for _, step, _ in steps.hash_fingerprints()] == [0, 1, 2]
    assert not steps.first_step_hooks  # taken off after the first step


def test_two_optimizers_and_a_scheduler_are_each_fingerprinted_before_their_first_step(tmp_path):
    """As a GAN's loop is written: two optimizers taking turns, one under an LR scheduler
    (which wraps its step); each gets its step 0 and its own step count."""
    torch = pytest.importorskip("torch")
    made_by_torch = torch.optim.Optimizer.__init__
    steps = StepWatch(Journal(tmp_path, os.getpid()))
    handles = steps.install(torch)
    try:
        generator, critic = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
        g_optimizer = torch.optim.Adam(generator.parameters(), lr=0.01)
        c_optimizer = torch.optim.SGD(critic.parameters(), lr=0.1)
        schedule = torch.optim.lr_scheduler.StepLR(g_optimizer, step_size=1)
        before = {"g": fingerprint(list(generator.parameters())), "c": fingerprint(list(critic.parameters()))}
        for _ in range(3):
            critic(generator(torch.ones(1, 2))).sum().backward()
            c_optimizer.step()
            g_optimizer.step()
            schedule.step()
    finally:
        torch.optim.Optimizer.__init__ = made_by_torch
        for handle in handles:
            handle.remove()
    recorded = steps.hash_fingerprints()
    assert steps.steps == [3, 3] and not steps.first_step_hooks
    assert [(i, step) for i, step, _ in recorded] == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (1, 2), (0, 3), (1, 3)]
    assert {i: digest for i, step, digest in recorded if step == 0} == {0: before["c"], 1: before["g"]}


def test_the_first_divergent_step_ignores_steps_one_schedule_skipped():
    old = [[s, f"d{s}"] for s in [0, *range(1, 65), *range(66, 129, 2)]]  # 32 per doubling
    new = [[s, f"d{s}"] for s in [0, *range(1, 65), *range(68, 129, 4)]]  # 16 per doubling
    assert first_divergent_step(old, new) is None and first_divergent_step(new, old) is None
    assert first_divergent_step(old, [[s, "x" if s == 72 else d] for s, d in new]) == 72
    assert first_divergent_step(old, new + [[256, "d256"]]) == 256  # one run went on
    assert first_divergent_step(old[:10], new) == 10


def test_a_line_that_starts_drawing_through_a_library_late_is_still_named(tmp_path):
    """After a drawing function's first EXACT_CALLS draws, its sites are sampled: a line
    that draws from then on, again and again, is still found."""
    (tmp_path / "late.py").write_text(textwrap.dedent(f"""\
        import torch
        from torch import nn

        drop, x = nn.Dropout(0.5), torch.ones(4)
        for _ in range({3 * EXACT_CALLS}):
            drop(x)
        for _ in range({3 * EXACT_CALLS}):
            drop(x)
        """))
    record = watched_script(tmp_path, "late.py")
    script = str((tmp_path / "late.py").resolve())
    sites = [e["where"] for e in read(record) if e["event"] == "draw_site" and e["call"] == "dropout"]
    assert sites == [f"{script}:6", f"{script}:8"]


def test_the_scripts_seeding_and_its_first_unseeded_numpy_draw_are_named_by_line(tmp_path):
    record = watched(tmp_path, "run", {"torch": None, "numpy": None, "python": None}, "--seed", "5")
    events = read(record)
    script = str((tmp_path / "train.py").resolve())
    seeds = [e for e in events if e["event"] == "seed"]
    assert [(e["call"], e["value"], e["where"], e["main"]) for e in seeds] == [
        ("torch.manual_seed", 5, f"{script}:{SEED_LINE}", True)]
    [numpy_draw] = [e for e in events if e["event"] == "first_draw" and e["generator"] == "numpy"]
    assert numpy_draw["where"] == f"{script}:{AUGMENT_LINE}" and numpy_draw["step"] == 0
    watch = json.loads((record / "watch.json").read_text())
    assert watch["steps"] == [24] and [f[1] for f in watch["fingerprints"]] == list(range(0, 25))
    assert all("numpy" in advanced and "torch" in advanced for _, advanced in watch["rng_intervals"][1:])
    assert watch["library_effective"]["threads"] == 1
    assert watch["script"] == script and script in watch["code"]


def test_seeding_inside_dataloader_workers_is_recorded(tmp_path):
    record = watched(tmp_path, "run", {"torch": None, "numpy": None, "python": None}, "--seed", "5",
                     "--workers", "2")
    script = str((tmp_path / "train.py").resolve())
    in_workers = [e for e in read(record) if e["event"] == "seed" and not e["main"]]
    by_script = [e for e in in_workers if e["where"] == f"{script}:{WORKER_SEED_LINE}"]
    assert sorted(e["value"] for e in by_script) == [1000, 1000, 1000, 1001, 1001, 1001]  # 2 workers, 3 epochs
    assert {e["call"] for e in in_workers} >= {"torch.manual_seed", "random.seed", "numpy.random.seed"}


@pytest.mark.parametrize("numpy_seed, identical", [(11, True), (None, False)])
def test_fixing_numpys_generator_makes_the_fingerprints_agree(tmp_path, numpy_seed, identical):
    seeds = {"torch": None, "numpy": numpy_seed, "python": None}
    runs = [json.loads((watched(tmp_path, f"r{i}", seeds, "--seed", "5") / "watch.json").read_text())
            for i in (1, 2)]
    assert (runs[0]["final_fingerprint"] == runs[1]["final_fingerprint"]) is identical
    if not identical:  # they part at the first step: the augmentation noise is in its batch
        assert runs[0]["fingerprints"][0] == runs[1]["fingerprints"][0]  # step 0: the same initial weights
        assert runs[0]["fingerprints"][1] != runs[1]["fingerprints"][1]


def test_each_line_that_draws_from_torchs_generator_is_named_with_what_drew(tmp_path):
    record = watched(tmp_path, "run", {"torch": None, "numpy": None, "python": None}, "--seed", "5")
    script = str((tmp_path / "train.py").resolve())
    sites = {(e["where"], e["call"]) for e in read(record) if e["event"] == "draw_site" and e["main"]}
    model_line = next(n for t, n in LINE.items() if t.startswith("model = nn.Sequential"))
    loop_line = LINE["    for xb, yb in loader:"]
    forward_line = next(n for t, n in LINE.items() if "model(xb)" in t)
    assert {(f"{script}:{LINE['x = torch.randn(256, 8)']}", "randn"),
            (f"{script}:{model_line}", "weight initialisation"),
            (f"{script}:{loop_line}", "DataLoader shuffle"),
            (f"{script}:{forward_line}", "dropout")} <= sites
    # journaled once per line and seeding, not once per draw: three epochs of shuffles and dropout, one entry each
    for line, call in ((loop_line, "DataLoader shuffle"), (forward_line, "dropout")):
        assert len([e for e in read(record) if e["event"] == "draw_site" and e["call"] == call
                    and e["where"] == f"{script}:{line}"]) == 1


def test_a_sitecustomize_the_watch_shadows_still_runs(tmp_path):
    own = tmp_path / "own_site"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['USER_SITECUSTOMIZE_RAN'] = 'yes'\n")
    (tmp_path / "show.py").write_text("import os\nprint(os.environ.get('USER_SITECUSTOMIZE_RAN'))\n")
    path = os.pathsep.join([str(REPO / "reprogrid" / "watch" / "site"), str(REPO), str(own)])
    done = subprocess.run([sys.executable, "show.py"], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "yes", done.stderr


def test_seeding_through_python_numpy_generators_and_cuda_is_recorded_by_line(tmp_path):
    script = textwrap.dedent("""\
        import random

        import numpy as np
        import torch

        random.seed(3)
        rng = np.random.default_rng(4)
        torch.cuda.manual_seed_all(5)
        np.random.seed(6)
    """)
    (tmp_path / "seeds.py").write_text(script)
    record = watched_script(tmp_path, "seeds.py")
    where = str((tmp_path / "seeds.py").resolve())
    assert [(e["call"], e["value"], e["where"]) for e in read(record) if e["event"] == "seed"] == [
        ("random.seed", 3, f"{where}:6"), ("numpy.default_rng", 4, f"{where}:7"),
        ("torch.cuda.manual_seed_all", 5, f"{where}:8"), ("numpy.random.seed", 6, f"{where}:9")]


def test_a_python_subprocess_the_script_starts_is_watched_too(tmp_path):
    (tmp_path / "child.py").write_text("import numpy as np\n\nnp.random.seed(9)\nnp.random.normal()\n")
    (tmp_path / "launcher.py").write_text(
        "import subprocess\nimport sys\n\nsubprocess.run([sys.executable, 'child.py'], check=True)\n")
    record = watched_script(tmp_path, "launcher.py")
    child = str((tmp_path / "child.py").resolve())
    in_child = [e for e in read(record) if e["where"].startswith(child)]
    assert [(e["event"], e.get("value"), e["where"], e["main"]) for e in in_child] == [
        ("seed", 9, f"{child}:3", False), ("first_draw", None, f"{child}:4", False)]  # a child, not the script
