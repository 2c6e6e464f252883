"""Entry point of every rule: `python reprogrid/workflow/scripts/step.py STEP LOG NAME=VALUE NAME:=JSON ...`.

Thin on purpose: the rule's inputs, outputs and params arrive as keyword arguments of
one reprogrid.steps function; see reprogrid/jobs/runner.py.
"""

import sys

from reprogrid.jobs.runner import main

sys.exit(main(sys.argv[1:]))
