"""Run by Python at start-up in every process of a command run (reprogrid puts this folder
on PYTHONPATH): hands over to reprogrid's watch when the run's spec is named, then runs the
`sitecustomize` this one shadows, if the environment has one (a user's or a distribution's)."""

import os
import sys


def _chain() -> None:
    """Import the next sitecustomize on sys.path, past this folder, as Python would have."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if os.path.abspath(entry or os.curdir) == here:
            continue
        path = os.path.join(entry or os.curdir, "sitecustomize.py")
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("_reprogrid_shadowed_sitecustomize", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return


if os.environ.get("REPROGRID_WATCH"):
    from reprogrid.watch.hook import install

    install(os.environ["REPROGRID_WATCH"])
_chain()
