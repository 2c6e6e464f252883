"""Run by Python at start-up in every process of a command run (reprogrid puts this folder
on PYTHONPATH): hands over to reprogrid's watch when the run's spec is named."""

import os

if os.environ.get("REPROGRID_WATCH"):
    from reprogrid.watch.hook import install

    install(os.environ["REPROGRID_WATCH"])
