"""After training steps: the optimizers' parameters fingerprinted, and which global
generators advanced since the last trace (torch's global optimizer step hook, so no line
of the script changes).

Every step is fingerprinted at first, then sparser (STEPS_EVERY_STEP, then about
PER_DOUBLING per doubling of the step count), so the record stays small and the first
divergent step is still found exactly early on, within a short interval later. The
generators are traced sparser still (`traced`: reading NumPy's state costs about 0.1 ms,
5 % of a small step), and once more at exit: the last interval runs to the script's end.
"""

from __future__ import annotations

import hashlib
import random

from reprogrid.inputs.rngtrace import GENERATORS

STEPS_EVERY_STEP = 64
PER_DOUBLING = 16  # each costs ~30 µs for the classifier example's model: at 32, about 1 % of its steps


def due(step: int) -> bool:
    """Whether step `step` (1-based) is fingerprinted."""
    if step <= STEPS_EVERY_STEP:
        return True
    return step % (1 << max(step.bit_length() - PER_DOUBLING.bit_length(), 0)) == 0


def raw_array(tensor):
    """A tensor's values as a NumPy array of its raw bits (bfloat16 as int16: NumPy has no bfloat16)."""
    import torch

    tensor = tensor.detach().cpu().contiguous()
    return (tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor).numpy()


def fingerprint(parameters) -> str:
    """blake2b over the parameters' raw bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for parameter in parameters:
        digest.update(raw_array(parameter))
    return digest.hexdigest()


class Fingerprinter:
    """`fingerprint`, with each parameter's NumPy view of its CPU memory kept between steps:
    an optimizer updates parameters in place, so the view reads their new values, and
    making it anew (detach, numpy) costs as much again as hashing a small model. A
    parameter given other memory (`p.data = ...`) gets a new view."""

    def __init__(self):
        self.views: dict[int, tuple] = {}  # id(parameter) -> ((data_ptr, dtype, shape), its raw array)

    def __call__(self, parameters) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for parameter in parameters:
            digest.update(self.raw(parameter))
        return digest.hexdigest()

    def raw(self, parameter):
        where = (parameter.data_ptr(), parameter.dtype, parameter.shape)
        kept = self.views.get(id(parameter))
        if kept is not None and kept[0] == where:
            return kept[1]
        array = raw_array(parameter)
        if parameter.device.type == "cpu" and parameter.is_contiguous():  # a view, not a copy
            self.views[id(parameter)] = (where, array)
        return array


def rng_states() -> dict:
    """Every global generator's state, raw: compared, never stored, so no digest is made
    (rngtrace.snapshot, which digests them, takes about twice as long)."""
    import numpy
    import torch

    states = {"python": random.getstate(), "numpy": numpy.random.get_state()[1].tobytes(),
              "torch": torch.random.get_rng_state().numpy().tobytes()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = b"".join(s.numpy().tobytes() for s in torch.cuda.get_rng_state_all())
    return states


def advanced(before: dict, after: dict) -> list[str]:
    """The generators whose state differs between two `rng_states`, in GENERATORS order."""
    return [g for g in GENERATORS if g in after and before.get(g, after[g]) != after[g]]


def optimizer_parameters(optimizer) -> list:
    return [p for group in optimizer.param_groups for p in group["params"]]


def traced(step: int) -> bool:
    """Whether the generators are traced after step `step`: the first 8, each power of two,
    every 128th."""
    return step <= 8 or step & (step - 1) == 0 or step % 128 == 0


class StepWatch:
    """Counts every optimizer's steps; fingerprints and traces on the due ones."""

    def __init__(self, journal):
        self.journal = journal
        # held to the end: a script's main() returns before the interpreter exits, and the
        # final parameters are read then (the memory of one model, kept a little longer)
        self.optimizers: list = []
        self.known: dict[int, int] = {}  # id(optimizer) -> its index (the list above keeps the ids taken)
        self.steps: list[int] = []
        self.fingerprints: list[list] = []  # [optimizer index, step, digest]; step 0: before its first step
        self.intervals: list[list] = []  # [step, generators that advanced since the last traced step]
        self.last = rng_states()
        self.last_traced = 0
        self.fingerprint = Fingerprinter()

    def index(self, optimizer) -> int:
        i = self.known.get(id(optimizer))
        if i is None:
            i = self.known[id(optimizer)] = len(self.optimizers)
            self.optimizers.append(optimizer)
            self.steps.append(0)
        return i

    def before_step(self, optimizer, args, kwargs) -> None:
        """The parameters an optimizer starts from, fingerprinted before its first step.
        (Every step passes here: the hooks are kept to a dictionary lookup or two.)"""
        if id(optimizer) not in self.known:
            self.fingerprints.append([self.index(optimizer), 0, self.fingerprint(optimizer_parameters(optimizer))])

    def initial_fingerprint(self) -> str | None:
        """The first optimizer's parameters before its first step: the run's initial weights."""
        return next((digest for i, step, digest in self.fingerprints if i == 0 and step == 0), None)

    def after_step(self, optimizer, args, kwargs) -> None:
        i = self.index(optimizer)
        step = self.steps[i] = self.steps[i] + 1
        if step > self.journal.step:
            self.journal.step = step
        if not due(step):
            return
        self.fingerprints.append([i, step, self.fingerprint(optimizer_parameters(optimizer))])
        if i == 0 and traced(step):
            self.trace(step)

    def trace(self, step: int) -> None:
        now = rng_states()
        self.intervals.append([step, advanced(self.last, now)])
        self.last, self.last_traced = now, step

    def trace_to_the_end(self) -> None:
        """At exit: the interval since the last traced step (what ran after the last step too)."""
        if self.steps and self.steps[0] > self.last_traced:
            self.trace(self.steps[0])

    def install(self, torch) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        register_optimizer_step_pre_hook(self.before_step)
        register_optimizer_step_post_hook(self.after_step)

    def final_parameters(self) -> list:
        """The parameters of every optimizer that stepped, in the order they first did."""
        return [p for optimizer in self.optimizers for p in optimizer_parameters(optimizer)]
