"""Snakemake entry point of rule `train`: train one run and open its MLflow run."""

from pathlib import Path
from typing import TYPE_CHECKING

from reprogrid.joblog import logged_to
from reprogrid.pipeline import run_train

if TYPE_CHECKING:
    from snakemake.script import snakemake

with logged_to(snakemake.log[0]):
    run_train(
        snakemake.params.run_config,
        seeds_path=snakemake.input.seeds,
        tracking_path=snakemake.input.tracking,
        model_path=snakemake.output.model,
        train_json_path=snakemake.output.record,
        workflow_dir=Path(snakemake.scriptdir).parent,
    )
