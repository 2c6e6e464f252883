"""The tool's prediction for a run: will its replicates, or a rerun of it, be bit-identical?

Made from the resolved run config and, once the run has trained, from what it drew: its
RNG trace (which global generators each phase drew from, reprogrid.inputs.rngtrace) and the
sources whose streams it used (`sources_used`, read inside the training process: a
source whose stream a fit never used cannot make its runs differ). Without them (before
anything runs) it assumes what the config suggests: a model with dropout draws from
torch's generator while training, augmentation from NumPy's.
Recorded with every run (`reprogrid.expect_bitwise`, `reprogrid.expect_rerun_bitwise`)
so that the audit can hold what happened against it.
"""

from __future__ import annotations

from reprogrid.config import SOURCES

# The library knob that seeds each global generator for training (torch's and CUDA's
# always follow the `dropout` stream).
SEEDED_BY = {"python": "seed_python_random", "numpy": "seed_numpy_global"}


def unseeded_drawn(run_config: dict, rng: dict[str, list[str]]) -> list[str]:
    """Generators the run drew from while training that its library configuration
    leaves unseeded (OS entropy: different in every run)."""
    library = run_config["library"]
    return [g for g in rng.get("train", []) if g in SEEDED_BY and not library[SEEDED_BY[g]]]


def entropy_seeded_drawn(run_config: dict, rng: dict[str, list[str]]) -> list[str]:
    """Generators the run drew from while training that its library configuration seeds,
    but from a source the setting leaves unseeded (a seed drawn from OS entropy)."""
    modes, library = run_config["seed_modes"], run_config["library"]
    source = {"torch": "dropout", "cuda": "dropout", "numpy": "augment", "python": "augment"}
    return [g for g in rng.get("train", []) if g in source and modes[source[g]] == "unseeded"
            and (g not in SEEDED_BY or library[SEEDED_BY[g]])]


def expect_bitwise(run_config: dict, rng: dict[str, list[str]] | None = None, used: list[str] | None = None,
                   device: str | None = None) -> bool:
    """The tool's prediction that every replicate of this run's cell is bit-identical.

    True when no source the run draws from varies or is left unseeded, every generator
    those sources feed is seeded (NumPy's global one when augmentation is on and runs in
    the main process), and on CUDA deterministic algorithms are on.
    """
    return expect_rerun_bitwise(run_config, rng, used, device) and not varied_sources(run_config, rng, used)


def expect_rerun_bitwise(run_config: dict, rng: dict[str, list[str]] | None = None,
                         used: list[str] | None = None, device: str | None = None) -> bool:
    """The prediction that running this same run again (same replicate, same seeds)
    gives the same bits: the cell-level prediction, except that varied sources are
    allowed (a rerun draws their same seeds again)."""
    drawn = active_sources(run_config, rng, used)
    if any(run_config["seed_modes"][source] == "unseeded" for source in drawn):
        return False
    library = run_config["library"]
    if rng is not None:
        if unseeded_drawn(run_config, rng):
            return False
    elif "augment" in drawn and library["num_workers"] == 0 and not library["seed_numpy_global"]:
        return False
    # on a GPU (the device the run resolved to; before it ran, one `auto` may find), only
    # deterministic algorithms make kernels repeat (cuDNN's benchmark mode picks among
    # kernels by timing, so it may pick another next run)
    if (device or library["device"]) in ("cuda", "auto") and (not library["deterministic_algorithms"]
                                                   or library.get("cudnn_benchmark")):
        return False
    return True


def active_sources(run_config: dict, rng: dict[str, list[str]] | None = None,
                   used: list[str] | None = None) -> list[str]:
    """The sources this run draws from; the others' modes cannot matter. With the
    sources the run was seen to use, those; else, with the run's trace, `dropout` and
    `augment` count when training drew from the generators they seed (torch's; NumPy's
    or Python's) or ran loader workers (seeded from them)."""
    if used is not None:
        return [source for source in SOURCES if source in used]
    own_fit = "factory" in run_config["training"]
    workers = run_config["library"]["num_workers"] > 0
    if rng is None:
        # not seen yet: assume a factory model or a user's fit draws dropout
        dropout = own_fit or run_config["model"].get("dropout", 1.0) > 0
        augment = own_fit or run_config.get("augment", {}).get("noise_std", 0) > 0
    else:
        trained = set(rng.get("train", []))
        dropout = bool(trained & {"torch", "cuda"}) or workers
        augment = bool(trained & {"numpy", "python"}) or (workers and (own_fit or run_config.get(
            "augment", {}).get("noise_std", 0) > 0))
    drawn = {
        "split": True,  # a dataset factory runs with the global generators seeded by it
        "init": True,
        "order": True,
        "dropout": dropout,
        "augment": augment,
        "sampling": run_config["model"].get("name") == "vae" or own_fit,
        "ulp": True,
    }
    return [source for source in SOURCES if drawn[source]]


def varied_sources(run_config: dict, rng: dict[str, list[str]] | None = None,
                   used: list[str] | None = None) -> list[str]:
    """Active sources whose draws differ between replicates (varied or unseeded)."""
    modes = run_config["seed_modes"]
    return [s for s in active_sources(run_config, rng, used) if modes[s] in ("vary", "unseeded")]


def unused_sources(run_config: dict, used: list[str] | None) -> list[str]:
    """Sources the setting varies or leaves unseeded whose stream the run never drew
    from: they cannot make its runs differ."""
    if used is None:
        return []
    return [s for s, mode in run_config["seed_modes"].items() if mode in ("vary", "unseeded") and s not in used]


def of_record(train: dict) -> dict:
    """The keyword arguments the functions above take, from a run's train.json."""
    return {"rng": train.get("rng"), "used": train.get("sources_used")}


def cell_expects_bitwise(predictions: list[bool]) -> bool:
    """A cell is predicted bitwise when every one of its runs is (one definition, for
    compare and the audit alike)."""
    return bool(predictions) and all(predictions)
