"""When a fit's global generators pass from the `init` stream to the training streams.

A fit first builds (its model, loaders, optimizer), then trains. While it builds, the
global generators hold the `init` stream: a model built then, by `run.model()` or by the
fit's own code, draws its initial weights from `init`. They pass to the training streams
(torch's to `dropout`; NumPy's and Python's to `augment`, or to OS entropy where the
library configuration leaves them unseeded) at the first sign of training:
- a DataLoader iterated (any: `run.loader`'s or the fit's own; its shuffle and worker
  seeds are training draws),
- a module's forward call made outside any module's construction,
- an optimizer step,
- `run.resumable()` or `run.epoch_end()`.
So the order in which a fit builds its model and its loaders never changes which stream
drives what. `run.model()` called after the switch builds under `init` and hands the
training streams back exactly as they were.

A module with parameters that the fit builds itself after the switch and before its
first optimizer step would take its initial weights from the training streams; no order
of the rest can make that right, so it is refused, naming the line. Built once training
is under way (a head added mid-training), it is a training draw like any other.

The watch costs nothing once training runs: the forward hook is removed at the switch;
what stays is a flag test per optimizer step and per DataLoader iteration.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.nn.modules import module as nn_module
from torch.optim import optimizer as optim_module
from torch.utils.data import DataLoader

from reprogrid.record.hashing import weights_digest

_PACKAGE_DIRS = (str(Path(torch.__file__).parent), str(Path(__file__).parents[1]))


def user_line() -> str:
    """`file:line` of the innermost frame outside torch and reprogrid: the user's code."""
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith(_PACKAGE_DIRS) and "importlib" not in frame.filename:
            return f"{Path(frame.filename).name}:{frame.lineno}"
    return "an unknown line"


def construction_site() -> tuple[str, str] | None:
    """(class, `file:line` of the call) of the outermost module whose __init__ is running
    further up the stack; None when no module is being built."""
    found, frame = None, sys._getframe(1)  # noqa: SLF001
    while frame is not None:
        module = frame.f_locals.get("self") if frame.f_code.co_name == "__init__" else None
        if isinstance(module, torch.nn.Module) and frame.f_back is not None:
            found = type(module).__name__, f"{Path(frame.f_back.f_code.co_filename).name}:{frame.f_back.f_lineno}"
        frame = frame.f_back
    return found


class TrainingStart:
    """Watches one fit for the first sign of training and calls `on_start(why)` then,
    once. Used as a context manager around the fit."""

    def __init__(self, on_start: Callable[[str], None], refuse: Callable[[str], Exception]):
        self._on_start, self._refuse = on_start, refuse
        self.started_by: str | None = None
        self.stepped = False
        self.first_step_weights: str | None = None  # the parameters as the first optimizer step found them
        self._building = 0
        self._forward_hook = None
        self._handles: list = []
        self._original_iter = None

    def __enter__(self) -> TrainingStart:
        original = self._original_iter = DataLoader.__iter__

        def __iter__(loader):  # noqa: N807 - replaces DataLoader.__iter__ while the fit runs
            if self.started_by is None:
                self.start(f"a DataLoader was iterated at {user_line()}")
            return original(loader)

        DataLoader.__iter__ = __iter__
        self._forward_hook = nn_module.register_module_forward_pre_hook(self._on_forward)
        self._handles = [optim_module.register_optimizer_step_pre_hook(self._on_step),
                         nn_module.register_module_parameter_registration_hook(self._on_parameter)]
        return self

    def __exit__(self, *exc) -> None:
        DataLoader.__iter__ = self._original_iter
        for handle in [*self._handles, self._forward_hook]:
            if handle is not None:
                handle.remove()

    @contextmanager
    def building(self):
        """While `run.model()` builds: its parameters and forward calls are not the fit's."""
        self._building += 1
        try:
            yield
        finally:
            self._building -= 1

    def start(self, why: str) -> None:
        if self.started_by is None:
            self.started_by = why
            if self._forward_hook is not None:
                self._forward_hook.remove()  # safe inside the hook: torch iterates a copy
                self._forward_hook = None
            self._on_start(why)

    def _on_forward(self, module, args):
        # a forward call made to size a layer while a model is built is not training
        if self.started_by is None and not self._building and construction_site() is None:
            self.start(f"{type(module).__name__}'s forward was called at {user_line()}")

    def _on_step(self, optimizer, args, kwargs):
        if not self.stepped:
            self.stepped = True
            self.start(f"an optimizer step at {user_line()}")
            params = [p for group in optimizer.param_groups for p in group["params"]]
            self.first_step_weights = weights_digest({f"param{i}": p.detach() for i, p in enumerate(params)})

    def _on_parameter(self, module, name, param):
        if self._building or self.started_by is None or self.stepped:
            return
        built, where = construction_site() or (type(module).__name__, user_line())
        raise self._refuse(
            f"{built} was built at {where} after training began ({self.started_by}): its "
            "initial weights would come from the training streams, not `init`. Build the model before iterating "
            "a loader or calling it, or build it with run.model()")
