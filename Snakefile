from snakemake.utils import min_version

min_version("9.0")


# A config file named on the command line (--configfile) replaces the default one
# instead of being deep-merged into it: otherwise the default's seed settings and
# library configurations would silently join the grid that file describes.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/seed.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/audit.smk"


# On a cluster these run where snakemake runs: a seed is cheaper than a job submission,
# the audit only reads MLflow.
localrules:
    all,
    seed,
    audit,


rule all:
    default_target: True
    input:
        # `--forcerun RULE path...` names what to rerun; see forced_paths in common.smk
        FORCED_PATHS or [*rules.compare.output, rules.audit.output.report],
