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
PER_DOUBLING = 32


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
        self.steps: list[int] = []
        self.fingerprints: list[list] = []  # [optimizer index, step, digest]; step 0: before its first step
        self.intervals: list[list] = []  # [step, generators that advanced since the last traced step]
        self.last = rng_states()
        self.last_traced = 0

    def index(self, optimizer) -> int:
        for i, known in enumerate(self.optimizers):
            if known is optimizer:
                return i
        self.optimizers.append(optimizer)
        self.steps.append(0)
        return len(self.optimizers) - 1

    def before_step(self, optimizer, args, kwargs) -> None:
        """The parameters an optimizer starts from, fingerprinted before its first step."""
        if not any(known is optimizer for known in self.optimizers):
            self.fingerprints.append([self.index(optimizer), 0, fingerprint(optimizer_parameters(optimizer))])

    def initial_fingerprint(self) -> str | None:
        """The first optimizer's parameters before its first step: the run's initial weights."""
        return next((digest for i, step, digest in self.fingerprints if i == 0 and step == 0), None)

    def after_step(self, optimizer, args, kwargs) -> None:
        i = self.index(optimizer)
        self.steps[i] += 1
        step = self.steps[i]
        self.journal.step = max(self.steps)
        if not due(step):
            return
        self.fingerprints.append([i, step, fingerprint(optimizer_parameters(optimizer))])
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
