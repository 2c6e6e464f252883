# Config validation, the grid's names, and how rules run their step. Runs at parse
# time, so it stays cheap: nothing here imports torch or mlflow.
import json
import shlex
import sys
import time

from snakemake.utils import validate

from reprogrid import config as cfg
from reprogrid.config import checks as configcheck
from reprogrid.jobs import invocation
from reprogrid.jobs import runner as steps
from reprogrid.jobs import warm_client as warm
from reprogrid.steps.preflight import check_inputs
from reprogrid.config.tracking_uri import tracking_uri
from reprogrid.report.closing import closing_lines
from reprogrid.workflow import STEP_SCRIPT

STARTED = time.time()  # the end-of-grid summary reads only what this invocation wrote


def validate_variants(schema):
    """Each variant's config (the config with the variant's changes merged in) against the schema."""
    for name in config.get("variants") or {}:
        try:
            validate(cfg.with_variant(config, name), schema=schema)
        except WorkflowError as error:
            if not hasattr(error.__context__, "absolute_path"):
                raise
            problem = cfg.schema_error_message(error.__context__)
            raise cfg.ConfigError(
                f"variants.{name}", f"its config is not valid: {problem}"
            ) from None


try:
    # what YAML and JSON Schema let through: keys written twice, alias bombs, 3.0 for 3
    configcheck.check_files(workflow.configfiles)
    configcheck.check_size(config)
    cfg.check_finite(config)
    configcheck.check_integers(config)
    validate(config, schema="../schemas/config.schema.yaml")
    validate_variants("../schemas/config.schema.yaml")
    cfg.check_config(config)
    check_inputs(config)
except WorkflowError as error:
    # name the offending key first, instead of jsonschema's schema dump
    schema_error = error.__context__
    if not hasattr(schema_error, "absolute_path"):
        raise
    raise WorkflowError(cfg.schema_error_message(schema_error)) from None
except cfg.ConfigError as error:
    raise WorkflowError(str(error)) from None
if cfg.scale_warning(config):
    print(f"reprogrid: {cfg.scale_warning(config)}", file=sys.stderr)


def forced_paths(argv):
    """Paths named after `--forcerun`/`-R` on the command line.

    `snakemake --forcerun train results/runs/s/l/r1/eval.json` reads the path as one
    more thing to force, not as the target, so the default target (the whole grid)
    would be rebuilt with every train job forced. Rule `all` therefore asks for just
    the forced paths when there are any: that command reruns exactly that run.
    """
    paths, forcing = [], False
    for token in argv[1:]:
        if token in ("--forcerun", "-R"):
            forcing = True
        elif token.startswith("-"):
            forcing = False
        elif forcing and "/" in token:
            paths.append(token)
    return paths


FORCED_PATHS = forced_paths(sys.argv)
if workflow.is_main_process and not workflow.dryrun and invocation.works(sys.argv):
    try:  # before Snakemake takes its own lock, and before any work
        RELEASED = invocation.claim()
    except invocation.AlreadyRunning as error:
        raise WorkflowError(str(error)) from None
    if RELEASED:
        print(f"reprogrid: {RELEASED}", file=sys.stderr)
TRACKING_URI = tracking_uri(config)
# Written before any job runs (see onstart below); jobs read it, no rule makes it.
TRACKING_FILE = "results/tracking.json"
RUN_KEYS = cfg.run_keys(config)
# a file dataset is an input of every train job: editing the file retrains
DATA_FILES = [config["dataset"]["path"]] if "path" in config.get("dataset", {}) else []
# a run's place: with variants, the variant between the library configuration and the replicate
RUN_PATH = (
    "{setting}/{libconf}/{variant}/r{replicate}"
    if config.get("variants")
    else "{setting}/{libconf}/r{replicate}"
)
RUN_DIR = f"results/runs/{RUN_PATH}"
LOG_DIR = f"results/logs/{RUN_PATH}"
# the seed step names the run with it; its seeds never depend on it (matched across variants)
VARIANT_ARGUMENT = {"variant": "wildcards.variant"} if config.get("variants") else {}
# Each rule's job: `step.py STEP LOG NAME=VALUE ...` (see reprogrid/jobs/runner.py). A shell
# job rather than `script:`: it starts a bare Python, and torch-heavy steps go to a warm
# worker (reprogrid/jobs/warm_server.py) that has done the imports once for the whole invocation.
STEP = shlex.join([sys.executable, str(STEP_SCRIPT)])


wildcard_constraints:
    setting="[A-Za-z0-9][A-Za-z0-9_.-]*",
    libconf="[A-Za-z0-9][A-Za-z0-9_.-]*",
    variant="[A-Za-z0-9][A-Za-z0-9_.-]*",
    replicate="[1-9][0-9]*",


def step(name, of_run=False, **arguments):
    """The shell command running step `name` with keyword arguments taken from the job:
    `model_path="output.model"`. Params are JSON text (`NAME:=`), the rest plain strings.
    Params are plain values or functions of the wildcards only: Snakemake compares those
    between runs (so a changed config reruns the job), and they keep DAG building cheap.
    A step `of_run` holds that run's lock while it works (reprogrid/jobs/runlock.py).
    """
    parts = [STEP, name, "{log:q}"]
    if of_run:  # wildcards are constrained to characters the shell leaves alone
        parts.append(f"run_key={RUN_PATH.replace('{', '{wildcards.')}")
    for keyword, source in arguments.items():
        operator = ":=" if source.startswith("params.") else "="
        parts.append(f"{keyword}{operator}{{{source}:q}}")
    return " ".join(parts)


def run_config(wildcards):
    """The resolved config of one run, as JSON: editing it reruns exactly that run."""
    return json.dumps(
        cfg.resolve_run_config(
            config,
            wildcards.setting,
            wildcards.libconf,
            int(wildcards.replicate),
            getattr(wildcards, "variant", None),
        )
    )


def libconf_gpus(wildcards):
    """One GPU for a library configuration on CUDA (the SLURM executor asks for it)."""
    return int(cfg.library_knobs(config, wildcards.libconf)["device"] == "cuda")


def libconf_threads(wildcards):
    """Scheduling only: the run itself always uses its library configuration's threads."""
    return cfg.library_knobs(config, wildcards.libconf)["threads"]


def libconf_cpu_capability(wildcards):
    """torch's CPU kernels for the run's jobs (set before torch loads), or "": as torch picks."""
    return json.dumps(
        cfg.library_knobs(config, wildcards.libconf).get("cpu_capability") or ""
    )


WARM = {}


def prepare_tracking():
    """Create the MLflow store and experiment and record the grid they expect, once per
    invocation and before any job fans out (concurrent first-time schema creation on
    SQLite races). A hook rather than a rule: a rule's output that every job depends on
    would, once rerun for a changed grid, stop Snakemake from planning anything else.
    In a fresh process: it imports MLflow while the warm server imports torch, which
    the first training jobs need (and no training job needs MLflow)."""
    arguments = {
        "uri": TRACKING_URI,
        "experiment": config["experiment"],
        "grid": cfg.grid_record(config),
        "out_path": TRACKING_FILE,
    }
    try:
        steps.run_fresh("tracking", arguments, "results/logs/tracking.log")
    except steps.StepFailed as failure:
        warm.stop(WARM.get("server"))
        raise WorkflowError(
            f"could not prepare the MLflow store at {TRACKING_URI}: {failure.reason}"
        ) from None


def preflight():
    """Import and call the user's own factories (and read their data) once, before the
    MLflow store is touched: a broken factory stops the workflow with one line naming
    the config key, and no run is created."""
    if not cfg.uses_own_code(config):
        return
    try:
        steps.run("preflight", {"config": config}, "results/logs/preflight.log")
    except (steps.StepFailed, cfg.ConfigError) as failure:
        warm.stop(WARM.get("server"))
        raise WorkflowError(getattr(failure, "reason", str(failure))) from None


onstart:
    WARM["server"] = warm.start()
    preflight()
    prepare_tracking()


onsuccess:
    warm.stop(WARM.get("server"))
    if (
        workflow.is_main_process
        and not workflow.dryrun
        and (lines := closing_lines(STARTED))
    ):
        print("\n".join(lines), flush=True)


onerror:
    warm.stop(WARM.get("server"))
