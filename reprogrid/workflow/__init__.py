"""reprogrid's Snakemake workflow, shipped inside the package (rules, config schema, report
captions, the scripts the rules run), so that an installed reprogrid runs a grid from any
directory: the clone's Snakefile and a project's (`reprogrid init`) use it as a Snakemake module."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
SNAKEFILE = HERE / "Snakefile"
SCHEMA_FILE = HERE / "schemas" / "config.schema.yaml"
STEP_SCRIPT = HERE / "scripts" / "step.py"
DEFAULT_CONFIG = "config/config.yaml"


def snakefile() -> str:
    """The packaged Snakefile's path: `module reprogrid: snakefile: snakefile()`."""
    return str(SNAKEFILE)


def default_configfile() -> str:
    """config/config.yaml where it exists; otherwise exit with one line that says what to
    do (a WorkflowError would come with Snakemake's trace of the Snakefile)."""
    if Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG
    raise SystemExit(f"reprogrid: no {DEFAULT_CONFIG} in {Path.cwd()}: run `reprogrid init` here to write "
                        "a starting grid, or name a config with --configfile FILE")
