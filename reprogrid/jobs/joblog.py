"""Send a job's log records and warnings to its log file (and keep errors there too)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def logged_to(path: str | Path):
    """Log `reprogrid` records and Python warnings to `path` while the block runs;
    an exception is logged with its traceback, then re-raised."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [pid %(process)d]: %(message)s"))
    loggers = [logging.getLogger("reprogrid"), logging.getLogger("py.warnings")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    except Exception:
        logging.getLogger("reprogrid").exception("job failed")
        raise
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
