"""Snakemake entry point of rule `seed`: write one run's seeds.json."""

from typing import TYPE_CHECKING

from reprogrid.config import run_key
from reprogrid.joblog import logged_to
from reprogrid.pipeline import run_seed

if TYPE_CHECKING:
    from snakemake.script import snakemake

w = snakemake.wildcards
with logged_to(snakemake.log[0]):
    run_seed(
        run_key(w.setting, w.libconf, w.replicate),
        snakemake.params.root_seed,
        snakemake.params.modes,
        int(w.replicate),
        snakemake.output[0],
    )
