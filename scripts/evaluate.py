"""Snakemake entry point of rule `evaluate`: test one run and finish its MLflow run."""

from typing import TYPE_CHECKING

from reprogrid.joblog import logged_to
from reprogrid.pipeline import run_evaluate

if TYPE_CHECKING:
    from snakemake.script import snakemake

with logged_to(snakemake.log[0]):
    run_evaluate(
        train_json_path=snakemake.input.record,
        model_path=snakemake.input.model,
        tracking_path=snakemake.input.tracking,
        eval_json_path=snakemake.output.record,
        predictions_path=snakemake.output.predictions,
    )
