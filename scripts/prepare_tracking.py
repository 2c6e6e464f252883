"""Snakemake entry point of rule `tracking`: create the MLflow store and experiment."""

from typing import TYPE_CHECKING

from reprogrid.joblog import logged_to
from reprogrid.pipeline import prepare_tracking

if TYPE_CHECKING:
    from snakemake.script import snakemake

with logged_to(snakemake.log[0]):
    prepare_tracking(snakemake.params.uri, snakemake.params.experiment, snakemake.output[0])
