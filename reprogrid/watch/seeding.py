"""Seeding calls and first draws, recorded where the script makes them.

A seeding call (`torch.manual_seed(s)`, `np.random.seed(s)`, `random.seed(s)`, ...) is
journaled with the generator, the value and the caller's `file:line`, and arms that
generator's first-draw watch: the next draw from NumPy's or Python's global generator
through their module functions is journaled with its `file:line` too ("drawn in
augment.py:14 after no seeding"). torch's global generator is drawn from through many
functions and tensor methods (dropout, randn_like, a DataLoader's shuffle, weight
initialisation): each line of the user's code that makes one of them draw from it is
journaled once per seeding, as a draw site ("vae.py:30 (randn_like)"); draws with an
explicit `generator=` are not the global generator's and are left out. Finding the line
costs a walk through every frame between it and the draw (nn.Dropout's forward, the
module call machinery), more than the rest of a small training step's watching together;
so each drawing function's first EXACT_CALLS draws since a seeding are traced, then every
SAMPLE_EVERY-th (a prime: calls from lines taking turns do not fall on one of them only).
A line that starts drawing only after that, and draws only a few times, can go unnamed;
the generator's trace still shows that it advanced.

The wrappers replace module attributes, so they reach code that looks the functions up
at call time (`torch.manual_seed(...)`, `np.random.normal(...)`) and code that imports
them after the watch started, which is all of the script's.
"""

from __future__ import annotations

import functools
import random
import sys
import threading

from reprogrid.watch.journal import Journal, caller, from_library, user_frame

_inside = threading.local()  # torch.manual_seed seeds CUDA itself: journal the outer call only

NUMPY_NOT_DRAWS = {"seed", "get_state", "set_state", "RandomState", "Generator", "default_rng", "bit_generator",
                   "get_bit_generator", "set_bit_generator", "BitGenerator", "SeedSequence", "MT19937", "PCG64",
                   "PCG64DXSM", "Philox", "SFC64"}
PYTHON_NOT_DRAWS = {"seed", "getstate", "setstate", "Random", "SystemRandom"}
# what draws from torch's global generator, where a script reaches it
TORCH_DRAWS = ("rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal",
               "bernoulli", "multinomial", "poisson")
TORCH_FUNCTIONAL_DRAWS = ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
                          "rrelu", "gumbel_softmax")
# a draw made by torch itself for the user, named by what it is for
LIBRARY_DRAWS = {"torch.utils.data.sampler": "DataLoader shuffle", "torch.utils.data.dataloader": "DataLoader base seed",
                 "torch.nn.init": "weight initialisation",
                 "torch.nn.modules.dropout": "dropout"}
TENSOR_DRAWS = ("random_", "uniform_", "normal_", "bernoulli_", "exponential_", "geometric_", "cauchy_", "log_normal_")
# draws from torch's generator traced to the user's line: each function's first EXACT_CALLS
# after a seeding, then every SAMPLE_EVERY-th (see above)
EXACT_CALLS = 64
SAMPLE_EVERY = 61


def _training_parameter(function) -> tuple[int | None, bool]:
    """(position, default) of a `training` parameter, or (None, True): the function always draws."""
    import inspect

    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return None, True
    for position, parameter in enumerate(parameters):
        if parameter.name == "training":
            return position, parameter.default
    return None, True


class Watch:
    """The seeding and first-draw wrappers of one process."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self.armed = {"numpy": True, "python": True}  # a first draw before any seeding counts too
        self.torch_sites: set = set()  # (code, line) of calls that drew from torch's generator since its seeding
        self.torch_draws: dict[str, int] = {}  # drawing function -> its draws since the seeding

    def seeded(self, generator: str, call: str, value, where: str) -> None:
        self.journal.write({"event": "seed", "generator": generator, "call": call,
                            "value": value if isinstance(value, (int, type(None))) else repr(value), "where": where,
                            "library": from_library(where)})
        if generator in self.armed:
            self.armed[generator] = True
        if generator == "torch":
            self.torch_sites, self.torch_draws = set(), {}

    def drew(self, generator: str, call: str) -> None:
        self.armed[generator] = False
        self.journal.write({"event": "first_draw", "generator": generator, "call": call, "where": caller(3)})

    def seeding(self, original, generator: str, call: str):
        @functools.wraps(original)
        def seeding_call(*args, **kwargs):
            if getattr(_inside, "active", False):
                return original(*args, **kwargs)
            _inside.active = True
            try:
                result = original(*args, **kwargs)
            finally:
                _inside.active = False
            value = args[0] if args else kwargs.get("seed", kwargs.get("a", result if call == "torch.seed" else None))
            self.seeded(generator, call, value, caller(2))
            return result
        return seeding_call

    def drawing(self, original, generator: str, call: str):
        @functools.wraps(original)
        def draw(*args, **kwargs):
            if self.armed[generator]:
                self.drew(generator, call)
            return original(*args, **kwargs)
        return draw

    def install_python(self) -> None:
        random.seed = self.seeding(random.seed, "python", "random.seed")
        for name in random.__all__:
            function = getattr(random, name)
            if name not in PYTHON_NOT_DRAWS and callable(function) and not isinstance(function, type):
                setattr(random, name, self.drawing(function, "python", f"random.{name}"))

    def install_numpy(self, numpy) -> None:
        numpy.random.seed = self.seeding(numpy.random.seed, "numpy", "numpy.random.seed")
        for name in numpy.random.mtrand.__all__:
            function = getattr(numpy.random, name, None)
            if name not in NUMPY_NOT_DRAWS and callable(function) and not isinstance(function, type):
                setattr(numpy.random, name, self.drawing(function, "numpy", f"numpy.random.{name}"))
        # a function, so wrapping it breaks no isinstance check (RandomState is a class: left alone)
        numpy.random.default_rng = self._local(numpy.random.default_rng, "numpy.default_rng")

    def torch_drawing(self, original, call: str):
        """A draw from torch's global generator: its user-code site journaled once per seeding.
        Dropout and rrelu draw only when training (`nn.Dropout` in eval mode passes False)."""
        watch = self
        training_at, training_default = _training_parameter(original)

        @functools.wraps(original)
        def draw(*args, **kwargs):
            training = (args[training_at] if training_at is not None and len(args) > training_at
                        else kwargs.get("training", training_default))
            if kwargs.get("generator") is None and training:
                draws = watch.torch_draws[call] = watch.torch_draws.get(call, 0) + 1
                if draws > EXACT_CALLS and draws % SAMPLE_EVERY:
                    return original(*args, **kwargs)
                direct, frame = sys._getframe(1), user_frame(2)
                key = (frame.f_code, frame.f_lineno, direct.f_code) if frame is not None else None
                if key not in watch.torch_sites:  # a line seen since the last seeding: a set lookup
                    watch.torch_sites.add(key)
                    where = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"
                    what = LIBRARY_DRAWS.get(direct.f_globals.get("__name__", ""), call)
                    watch.journal.write({"event": "draw_site", "generator": "torch", "where": where, "call": what})
            return original(*args, **kwargs)
        return draw

    def install_torch(self, torch) -> None:
        import torch.nn.functional as functional

        for name in TORCH_DRAWS:
            setattr(torch, name, self.torch_drawing(getattr(torch, name), name))
        for name in TORCH_FUNCTIONAL_DRAWS:
            setattr(functional, name, self.torch_drawing(getattr(functional, name), name))
        for name in TENSOR_DRAWS:  # torch.Tensor is a Python class: its methods can be replaced
            setattr(torch.Tensor, name, self.torch_drawing(getattr(torch.Tensor, name), f"Tensor.{name}"))
        manual_seed = self.seeding(torch.manual_seed, "torch", "torch.manual_seed")
        torch.manual_seed = torch.random.manual_seed = manual_seed
        torch.seed = torch.random.seed = self.seeding(torch.seed, "torch", "torch.seed")
        for name in ("manual_seed", "manual_seed_all", "seed", "seed_all"):
            wrapped = self.seeding(getattr(torch.cuda, name), "cuda", f"torch.cuda.{name}")
            setattr(torch.cuda, name, wrapped)
            setattr(torch.cuda.random, name, wrapped)

    def _local(self, original, generator: str):
        """A generator of the script's own, seeded where it is made: journaled as a seeding."""
        watch = self

        @functools.wraps(original)
        def made(*args, **kwargs):
            where = caller(2)
            if not from_library(where):  # libraries make their own generators at import (scipy): not the script's
                watch.seeded(generator, generator, args[0] if args else kwargs.get("seed"), where)
            return original(*args, **kwargs)
        return made
