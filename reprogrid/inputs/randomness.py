"""Where each source's seed meets a generator. The one place randomness is set up.

Read top to bottom, in the order a run uses them:
- `split`: a NumPy Generator (data.load_split);
- `init`: torch's global generator, seeded right before the model is built, so only it
  is active while weights are initialised;
- `ulp`: a NumPy Generator picks one initial weight and a direction to nudge it by one
  unit in the last place;
- `dropout`: torch's global generator again, reseeded right before training, so dropout
  masks (and anything else drawn from the global generator) follow it;
- `augment`: NumPy's *global* generator (and Python's `random`), as third-party
  augmentation code uses them, seeded only when the library configuration says so;
- `order`: a torch Generator owned by the sampler;
- `sampling`: a torch Generator handed to the VAE.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_init(seeds: dict) -> None:
    """While the model is built, the `init` stream drives every global generator, so a
    model factory's own initialisation (torch, NumPy or Python random) is governed by it."""
    seed_globals(seeds["init"])


def seed_globals(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def nudge_one_ulp(model: torch.nn.Module, seed: int) -> dict:
    """Move one weight, chosen by `seed`, to the next representable float; say which."""
    rng = np.random.default_rng(seed)
    params = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    sizes = np.array([p.numel() for _, p in params])
    flat_index = int(rng.integers(sizes.sum()))
    upward = bool(rng.integers(2))
    which = int(np.searchsorted(np.cumsum(sizes), flat_index, side="right"))
    name, param = params[which]
    index = flat_index - int(sizes[:which].sum())
    with torch.no_grad():
        flat = param.view(-1)
        old = flat[index].clone()
        target = torch.full_like(old, float("inf") if upward else float("-inf"))
        flat[index] = torch.nextafter(old, target)
        new = flat[index].clone()
    return {
        "parameter": name,
        "index": index,
        "direction": "up" if upward else "down",
        "before": float(old),
        "after": float(new),
    }


def seed_training_globals(seeds: dict, library: dict) -> None:
    """Seed the global generators for training, or leave them to OS entropy.

    "Unseeded" is made explicit (reseeding from OS entropy) so that it means the same in
    a fresh process and in one that has already run other work.
    """
    torch.manual_seed(seeds["dropout"])
    np.random.seed(seeds["augment"] if library["seed_numpy_global"] else None)
    random.seed(seeds["augment"] if library["seed_python_random"] else None)


def order_generator(seeds: dict) -> torch.Generator:
    return torch.Generator().manual_seed(seeds["order"])


def sampling_generator(seeds: dict, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seeds["sampling"])


def loader_generator(seeds: dict, library: dict) -> torch.Generator | None:
    """The DataLoader's own generator, from which PyTorch seeds its workers.

    With `seed_workers` it is drawn from the `augment` source, so augmentation inside
    workers follows that source. Without it, PyTorch's default applies: the base seed
    is drawn from torch's global generator (the `dropout` stream during training).
    """
    if not library["seed_workers"]:
        return None
    return torch.Generator().manual_seed(seeds["augment"])
