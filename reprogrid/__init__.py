"""reprogrid: measure which sources of randomness make PyTorch training runs differ.

The package knows nothing of Snakemake: the workflow's scripts turn Snakemake's job
object into plain arguments and call `reprogrid.steps`. Importing the package is
cheap; torch and mlflow are imported only by the modules that need them.
"""

import os

__version__ = "0.1.0"

# A reproducibility tool does not phone home: MLflow 3 starts telemetry threads at its
# first tracking call (and writes ~/.config/mlflow/telemetry.json) unless this is set
# before it is imported. Every process reprogrid starts imports this package first,
# and every job inherits the variable from the Snakemake process that did.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
