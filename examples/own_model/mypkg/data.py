"""Interleaved spirals: a classification dataset generated from its own fixed seed."""

import numpy as np
import torch
from torch.utils.data import Dataset


class Points(Dataset):
    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


def spirals(classes: int = 3, per_class: int = 200, noise: float = 0.15, seed: int = 0):
    """(train, test) Datasets of 2-D points on `classes` interleaved spiral arms."""
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.1, 1.0, per_class), classes)
    label = np.repeat(np.arange(classes), per_class)
    angle = 4.0 * radius + 2 * np.pi * label / classes + noise * rng.standard_normal(radius.size)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    test = rng.random(label.size) < 0.25
    return Points(points[~test], label[~test]), Points(points[test], label[test])
