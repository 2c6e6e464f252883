# reprogrid's workflow, used as a Snakemake module: `snakemake --cores N` runs the grid
# config/config.yaml describes (or the one --configfile names); results go to results/.
# Rules of your own can go below; reprogrid's are named as in its documentation.
from reprogrid.workflow import default_configfile, snakefile

# --configfile replaces config/config.yaml instead of being merged into it
if not workflow.overwrite_configfiles:

    configfile: default_configfile()


module reprogrid:
    snakefile:
        snakefile()
    config:
        config


use rule * from reprogrid


# Snakemake runs only the top Snakefile's handlers: reprogrid's start and stop its
# worker, prepare the MLflow store and print the grid's summary at the end.
onstart:
    reprogrid.onstart()


onsuccess:
    reprogrid.onsuccess()


onerror:
    reprogrid.onerror()
