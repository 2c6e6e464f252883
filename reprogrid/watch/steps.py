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

import functools
import hashlib
import random

from reprogrid.inputs.rngtrace import GENERATORS

STEPS_EVERY_STEP = 64
DEFERRED_BYTES = 256 << 20  # parameters' bytes copied to be hashed at exit, at most
PER_DOUBLING = 16  # at 32, fingerprints were about 1 % of the classifier example's steps


def due(step: int) -> bool:
    """Whether step `step` (1-based) is fingerprinted."""
    if step <= STEPS_EVERY_STEP:
        return True
    return step % (1 << max(step.bit_length() - PER_DOUBLING.bit_length(), 0)) == 0


def next_due(step: int) -> int:
    """The first step after `step` that is fingerprinted."""
    following = step + 1
    if following <= STEPS_EVERY_STEP:
        return following
    period = 1 << max(following.bit_length() - PER_DOUBLING.bit_length(), 0)
    return -(-following // period) * period


def raw_array(tensor):
    """A tensor's values as a NumPy array of its raw bits (bfloat16 as int16: NumPy has no bfloat16)."""
    import torch

    tensor = tensor.detach().cpu().contiguous()
    return (tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor).numpy()


def fingerprint(parameters) -> str:
    """blake2b over the parameters' raw bytes."""
    return Fingerprinter()(parameters)


class Fingerprinter:
    """`fingerprint`, made cheap inside training steps. Each parameter's NumPy view of its
    CPU memory is kept between steps (an optimizer updates parameters in place, so the view
    reads their new values; making it anew costs as much again as hashing a small model; a
    parameter given other memory, `p.data = ...`, gets a new view). And `later` copies the
    bytes to be hashed at exit, up to DEFERRED_BYTES in all: a copy costs a sixth of the
    hash (blake2b, under 1 GB/s here); past that budget, fingerprints are hashed at once."""

    def __init__(self, budget: int = DEFERRED_BYTES):
        self.views: dict[int, tuple] = {}  # id(parameter) -> ((data_ptr, dtype, shape), its raw array)
        self.budget = budget

    def __call__(self, parameters) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for parameter in parameters:
            digest.update(self.raw(parameter))
        return digest.hexdigest()

    def later(self, parameters) -> str | bytes:
        """The fingerprint, or the bytes it is to be made of (`digest` makes it)."""
        arrays = [self.raw(parameter) for parameter in parameters]
        size = sum(array.nbytes for array in arrays)
        if size > self.budget:
            return self(parameters)
        self.budget -= size
        return b"".join(array.tobytes() for array in arrays)

    @staticmethod
    def digest(made: str | bytes) -> str:
        """A fingerprint from `later`: one digest of the joined bytes is the digest of the parts."""
        return made if isinstance(made, str) else hashlib.blake2b(made, digest_size=16).hexdigest()

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
    """Counts every optimizer's steps; fingerprints and traces on the due ones.

    Its hook runs after every step of every optimizer, where a few Python operations cost
    microseconds (several times what they cost in a loop of their own), so a step that is
    not due is one lookup, one addition and one comparison. An optimizer's parameters
    before its first step are read by a hook of that optimizer's own, put on as it is made
    and taken off after its first step, not by a global hook run before every step."""

    def __init__(self, journal):
        self.journal = journal
        # held to the end: a script's main() returns before the interpreter exits, and the
        # final parameters are read then (the memory of one model, kept a little longer)
        self.optimizers: list = []
        self.known: dict[int, int] = {}  # id(optimizer) -> its index (the list above keeps the ids taken)
        self.steps: list[int] = []
        journal.steps = self.steps  # the journal notes the step each event happened at
        self.next_due: list[int] = []
        self.first_step_hooks: dict[int, object] = {}  # id(optimizer) -> its hook's handle, until its first step
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
            self.next_due.append(1)
        return i

    def made(self, optimizer) -> None:
        """A new optimizer: its parameters are to be read before its first step."""
        self.first_step_hooks[id(optimizer)] = optimizer.register_step_pre_hook(self.before_first_step)

    def before_first_step(self, optimizer, args, kwargs) -> None:
        """The parameters an optimizer starts from (once: a first step that raised leaves
        this hook on for the next)."""
        if id(optimizer) not in self.known:
            self.fingerprints.append([self.index(optimizer), 0,
                                      self.fingerprint.later(optimizer_parameters(optimizer))])

    def hash_fingerprints(self) -> list[list]:
        """The fingerprints, those copied to be hashed later hashed now (at exit)."""
        self.fingerprints = [[i, step, self.fingerprint.digest(made)] for i, step, made in self.fingerprints]
        return self.fingerprints

    def initial_fingerprint(self) -> str | None:
        """The first optimizer's parameters before its first step: the run's initial weights."""
        return next((self.fingerprint.digest(made) for i, step, made in self.fingerprints if i == 0 and step == 0),
                    None)

    def after_step(self, optimizer, args, kwargs) -> None:
        i = self.known.get(id(optimizer))
        if i is None:
            i = self.index(optimizer)
        step = self.steps[i] = self.steps[i] + 1
        if step < self.next_due[i]:
            return
        self.next_due[i] = next_due(step)
        if step == 1 and id(optimizer) in self.first_step_hooks:
            self.first_step_hooks.pop(id(optimizer)).remove()  # after the step: its hooks are no longer run
        self.fingerprints.append([i, step, self.fingerprint.later(optimizer_parameters(optimizer))])
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

    def install(self, torch) -> list:
        """Optimizers made from now on are watched; the handle of the global hook."""
        from torch.optim.optimizer import register_optimizer_step_post_hook

        watch, made_by_torch = self, torch.optim.Optimizer.__init__

        @functools.wraps(made_by_torch)
        def made(optimizer, *args, **kwargs):
            made_by_torch(optimizer, *args, **kwargs)
            watch.made(optimizer)

        torch.optim.Optimizer.__init__ = made
        return [register_optimizer_step_post_hook(self.after_step)]

    def final_parameters(self) -> list:
        """The parameters of every optimizer that stepped, in the order they first did."""
        return [p for optimizer in self.optimizers for p in optimizer_parameters(optimizer)]
