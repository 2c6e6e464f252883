"""The tool's prediction for a run: will its replicates, or a rerun of it, be bit-identical?

Made from the resolved run config alone, before anything runs, and recorded with every
run (`reprogrid.expect_bitwise`, `reprogrid.expect_rerun_bitwise`) so that the audit can
hold what happened against it.
"""

from __future__ import annotations

from reprogrid.config import SOURCES


def expect_bitwise(run_config: dict) -> bool:
    """The tool's prediction that every replicate of this run's cell is bit-identical.

    True when no source the run draws from varies or is left unseeded, every generator
    those sources feed is seeded (NumPy's global one when augmentation is on and runs in
    the main process), and on CUDA deterministic algorithms are on.
    """
    return expect_rerun_bitwise(run_config) and not varied_sources(run_config)


def expect_rerun_bitwise(run_config: dict) -> bool:
    """The prediction that running this same run again (same replicate, same seeds)
    gives the same bits: the cell-level prediction, except that varied sources are
    allowed (a rerun draws their same seeds again)."""
    drawn = active_sources(run_config)
    if any(run_config["seed_modes"][source] == "unseeded" for source in drawn):
        return False
    library = run_config["library"]
    if "augment" in drawn and library["num_workers"] == 0 and not library["seed_numpy_global"]:
        return False
    # on a GPU (or one `auto` may find), only deterministic algorithms make kernels repeat
    if library["device"] in ("cuda", "auto") and not library["deterministic_algorithms"]:
        return False
    return True


def active_sources(run_config: dict) -> list[str]:
    """The sources this run actually draws from; the others' modes cannot matter."""
    drawn = {
        "split": True,  # a dataset factory runs with the global generators seeded by it
        "init": True,
        "order": True,
        # a factory model's dropout cannot be seen from the config: assume it draws
        "dropout": run_config["model"].get("dropout", 1.0) > 0,
        "augment": run_config["augment"]["noise_std"] > 0,
        "sampling": run_config["model"].get("name") == "vae",
        "ulp": True,
    }
    return [source for source in SOURCES if drawn[source]]


def varied_sources(run_config: dict) -> list[str]:
    """Active sources whose draws differ between replicates (varied or unseeded)."""
    modes = run_config["seed_modes"]
    return [s for s in active_sources(run_config) if modes[s] in ("vary", "unseeded")]
