"""`reprogrid init [DIR]`: a project of your own gets a Snakefile that uses the packaged
workflow as a Snakemake module (rules of your own can go beside it), a commented
config/config.yaml whose starting grid runs as it is, and the workflow profile the clone has. Existing files are never touched
unless `force` says so."""

from __future__ import annotations

import re
from pathlib import Path

SNAKEFILE = '''\
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
'''

CONFIG = '''\
# reprogrid's grid for this project: seed settings x library configurations x replicates
# ({runs} runs as written). `snakemake --cores N` runs it; `reprogrid audit` checks it.
# Every key is explained in config/README.md of reprogrid's repository; unnamed keys take
# their defaults.

experiment: {experiment}               # MLflow experiment the runs are logged to
tracking_uri: sqlite:///results/mlflow.db   # MLFLOW_TRACKING_URI overrides it
root_seed: 1234                       # every seed is derived from it
replicates: 2                         # runs per cell: r1, r2

{dataset}
{model}
{training}

seed_settings:                        # name -> {{source: mode}}; unnamed sources are `fixed`
  all_fixed: {{}}                       # every source fixed: should reproduce bit for bit
  init: {{init: vary}}                  # only the initial weights differ between replicates

library_configs:                      # name -> knobs; unnamed knobs take their defaults
  t1: {{threads: 1}}
  numpy_unseeded: {{threads: 1, seed_numpy_global: false}}   # "forgot to seed NumPy"
'''

PROFILE = """\
# Snakemake reads this workflow profile on every run here (profiles/default beside the
# Snakefile). The greedy scheduler: on grids of many short, independent runs, the default
# ILP scheduler's integer program at every round costs more than it saves.
scheduler: greedy
"""

BUILT_IN = {
    "dataset": "dataset: {name: digits, test_fraction: 0.2}   # scikit-learn's digits; or factory: pkg.module:function",
    "model": "model: {name: mlp, hidden: [64], dropout: 0.1}   # mlp | cnn | vae; or factory: pkg.module:function",
    "training": "training: {epochs: 5, batch_size: 32, optimizer: sgd, lr: 0.05, momentum: 0.9}",
}
FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class InitError(Exception):
    """What `reprogrid init` will not do, in one line."""


def files(experiment: str, *, data: str | None = None, model: str | None = None,
          fit: str | None = None) -> dict[str, str]:
    """The files `init` writes, by path relative to the project: a factory named replaces
    the built-in dataset, model or training loop (kwargs empty, to fill in)."""
    for option, value in (("--data", data), ("--model", model), ("--fit", fit)):
        if value is not None and not FACTORY.fullmatch(value):
            raise InitError(f"{option} {value!r}: expected package.module:function")
    parts = dict(BUILT_IN)
    if data:
        parts["dataset"] = f"dataset:\n  factory: {data}   # returns (train, test) Datasets or arrays\n  kwargs: {{}}"
    if model:
        parts["model"] = f"model:\n  factory: {model}   # returns a torch.nn.Module\n  kwargs: {{}}"
    if fit:
        parts["training"] = (f"training:\n  factory: {fit}   # fit(run, **kwargs) -> the trained torch.nn.Module\n"
                             "  kwargs: {}")
    runs = 2 * 2 * 2
    return {"Snakefile": SNAKEFILE, "config/config.yaml": CONFIG.format(runs=runs, experiment=experiment, **parts),
            "profiles/default/config.yaml": PROFILE}


def init(directory: Path, *, force: bool = False, **factories: str | None) -> list[Path]:
    """Write the project's files into `directory`; refuse, naming them, if any exists."""
    directory = directory.resolve()
    if directory.exists() and not directory.is_dir():
        raise InitError(f"{directory} is not a directory")
    experiment = re.sub(r"[^\w.-]+", "-", directory.name).strip("-") or "reprogrid"
    written = {directory / path: text for path, text in files(experiment, **factories).items()}
    existing = [path for path in written if path.exists()]
    if existing and not force:
        names = ", ".join(str(path.relative_to(directory)) for path in existing)
        raise InitError(f"{directory} already has {names}: nothing written (--force overwrites)")
    for path, text in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(written)
