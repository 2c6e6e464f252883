"""Snakemake entry point of rule `compare` (a `script:`: its run list can be too long
for a shell command line). Hands the step to a warm worker like every other rule."""

from typing import TYPE_CHECKING

from reprogrid.step import run

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
    },
    snakemake.log[0],
)
