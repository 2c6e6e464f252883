"""My training loop. Two augmentations draw from global generators that no seed of
mine names:
- kornia's RandomAffine, applied to every batch, draws from torch's global generator;
- Cutout, inside the dataset, picks its square with Python's `random` (in the loader's
  worker processes when there are some).

reprogrid hands `fit` a `run`: the model the config names, a loader seeded from the
run's own streams, and `epoch_end` to record each epoch. Which generators the loop
really drew from is what reprogrid measures.
"""

import random

import kornia.augmentation as K
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

SIDE = 8  # digits are 8x8 images


class Cutout(Dataset):
    """Blank a random `size` x `size` square of each image (DeVries & Taylor, 2017)."""

    def __init__(self, base, size: int):
        self.base, self.size = base, size

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        features, label = self.base[index]
        image = features.view(SIDE, SIDE).clone()
        row, col = random.randrange(SIDE - self.size + 1), random.randrange(SIDE - self.size + 1)
        image[row:row + self.size, col:col + self.size] = 0
        return image.view(-1), label


def seed_worker(worker_id: int) -> None:
    """A common mistake, copied from many a tutorial: every worker seeds Python's
    `random` with the same constant, so all workers cut out the same squares."""
    random.seed(0)


def fit(run, epochs: int = 10, lr: float = 0.05, cutout: int = 3, degrees: float = 15.0):
    model = run.model()  # the config's model, built under the init stream
    affine = K.RandomAffine(degrees=degrees, translate=(0.1, 0.1), p=1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = run.loader(Cutout(run.train_data, cutout), batch_size=32, shuffle=True, worker_init_fn=seed_worker)
    for epoch in range(1, epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for features, labels in loader:
            images = affine(features.view(-1, 1, SIDE, SIDE)).reshape(len(features), -1)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            seen += len(labels)
        run.epoch_end(model, epoch, train_loss=total / seen)
    return model
