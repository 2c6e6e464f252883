"""reprogrid: measure which sources of randomness make PyTorch training runs differ.

The package knows nothing of Snakemake: the workflow's scripts turn Snakemake's job
object into plain arguments and call `reprogrid.pipeline`. Importing the package is
cheap; torch and mlflow are imported only by the modules that need them.
"""

__version__ = "0.1.0"
