"""Loader workers' starting states: each worker reports the digests of its generators as
it starts (after the user's own worker_init_fn), so that workers started in one same
state (pytorch#5059) are found. Reports are taken off their queue every epoch: a worker
writes from a thread that must flush before the process can end, and a pipe nobody reads
fills after a few hundred reports."""

from __future__ import annotations

import multiprocessing
import queue
import time

from reprogrid.inputs import rngtrace


class WorkerStarts:
    """A loader's worker_init_fn: runs the user's own, then reports the worker's starting
    generator states (after everything that seeds them) to the training process."""

    def __init__(self, user_init, reports):
        self.user_init, self.reports = user_init, reports

    def __call__(self, worker_id: int) -> None:
        if self.user_init is not None:
            self.user_init(worker_id)
        self.reports.put(rngtrace.snapshot())


class WorkerReports:
    """The queue run.loader's workers report on, and what they reported."""

    def __init__(self):
        self.queue = multiprocessing.get_context().Queue()
        self.states: list[dict] = []

    def drain(self, expected: int, final: bool = False) -> None:
        """Take the reports off the queue; at the end, wait briefly for those still in flight
        (until `expected` have come)."""
        deadline = time.monotonic() + (2 if final else 0)
        while True:
            try:
                self.states.append(self.queue.get(timeout=0.05 if final else 0.001))
            except queue.Empty:
                if time.monotonic() >= deadline or len(self.states) >= expected:
                    return
