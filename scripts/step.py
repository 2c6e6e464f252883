"""Entry point of every rule: `python scripts/step.py STEP ARGS_JSON LOG`.

Thin on purpose: the rule's inputs, outputs and params arrive as JSON keyword arguments
of one reprogrid.pipeline function; see reprogrid/step.py.
"""

import sys

from reprogrid.step import main

sys.exit(main(sys.argv[1:]))
