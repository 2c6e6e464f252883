"""Snakemake entry point of rule `compare`: summary.csv, pairs.csv, report.html."""

from typing import TYPE_CHECKING

from reprogrid.joblog import logged_to
from reprogrid.pipeline import run_compare

if TYPE_CHECKING:
    from snakemake.script import snakemake

with logged_to(snakemake.log[0]):
    run_compare(
        snakemake.params.run_dirs,
        tracking_path=snakemake.input.tracking,
        summary_path=snakemake.output.summary,
        pairs_path=snakemake.output.pairs,
        report_path=snakemake.output.report,
    )
