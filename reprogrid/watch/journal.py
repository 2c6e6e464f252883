"""The watch's write-through journal: one JSON line per event, appended by whichever
process saw it. Forked DataLoader workers leave through os._exit (no atexit), so what they
see is written when it happens; events are rare (seeding calls, first draws)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

JOURNAL = "journal.jsonl"
_OWN = (os.path.dirname(__file__),)


LIBRARIES = tuple({os.path.dirname(os.__file__), *(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))})


def from_library(where: str) -> bool:
    """Whether a `file:line` is in the standard library or an installed package (torch's
    worker seeding, a library's own generators), not in the user's code."""
    return where.startswith(LIBRARIES)


def caller(skip: int = 2) -> str:
    """`file:line` of the first frame outside the watch, from `skip` frames up."""
    frame = sys._getframe(skip)
    while frame is not None and frame.f_code.co_filename.startswith(_OWN):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"


_NOT_USERS: dict[str, bool] = {}  # file -> in the watch, the standard library or a package (asked once per file)


def _not_user(filename: str) -> bool:
    known = _NOT_USERS.get(filename)
    if known is None:
        known = _NOT_USERS[filename] = filename.startswith(_OWN) or from_library(filename) or filename.startswith("<")
    return known


def user_frame(skip: int = 2):
    """The first frame in the user's code (outside the watch, the standard library and
    installed packages): the script's line that made a library draw; None if there is none."""
    frame = sys._getframe(skip)
    while frame is not None and _not_user(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


class Journal:
    def __init__(self, directory: str | Path, main_pid: int):
        self.path = Path(directory) / JOURNAL
        self.main_pid = main_pid  # a forked worker inherits this object: it asks its own pid
        self.steps: list[int] = []  # every optimizer's steps so far (reprogrid.watch.steps keeps it)

    @property
    def step(self) -> int:
        """The training step the main process has reached (0: before training)."""
        return max(self.steps, default=0)

    def write(self, event: dict) -> None:
        line = json.dumps({**event, "pid": os.getpid(), "main": os.getpid() == self.main_pid, "step": self.step}) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:  # one write of a short line with O_APPEND: lines of two processes never interleave
            os.write(descriptor, line.encode())
        finally:
            os.close(descriptor)


def read(directory: str | Path) -> list[dict]:
    path = Path(directory) / JOURNAL
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
