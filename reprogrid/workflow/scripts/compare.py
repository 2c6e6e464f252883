"""Snakemake entry point of rule `compare` (a `script:`: its run list can be too long
for a shell command line). Hands the step to a warm worker like every other rule."""

from pathlib import Path
from typing import TYPE_CHECKING

from reprogrid.jobs.runner import run

if TYPE_CHECKING:
    from snakemake.script import snakemake

run(
    "compare",
    {
        "run_dirs": snakemake.params.run_dirs,
        "tracking_path": snakemake.params.tracking_file,
        "summary_path": snakemake.output.summary,
        "pairs_path": snakemake.output.pairs,
        "report_path": snakemake.output.report,
        "attribution_path": snakemake.output.attribution,
        "libconfs_path": snakemake.output.libconfs,
        "figures_dir": str(Path(snakemake.output.attribution_figure).parent),
        "reference_libconf": snakemake.params.reference_libconf,
        "divergence_path": snakemake.output.divergence,
        "localise": snakemake.params.localise,
        "power_path": snakemake.output.power,
        "versus_path": snakemake.output.versus,
        "variants_path": snakemake.output.variants,
        "effect_sizes": dict(snakemake.params.effect_sizes),
    },
    snakemake.log[0],
)
