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
    Path(path).write_text("")  # a fresh log per attempt, then appended to: a training.command's
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")  # output goes into it too
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
