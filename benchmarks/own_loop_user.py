"""A user's own training loop, written as people write one: their own CNN, their own
DataLoader built before the model, only torch seeded. `fit(run, ...)` is the same loop
audited by reprogrid (run.train_data, run.epoch_end each epoch); `plain(...)` is the
script without reprogrid. benchmarks/own_loop.py copies this file into each scratch
directory as `userloop.py` and times one against the other.
"""

import time

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(32 * 16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x.view(-1, 1, 8, 8)))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.conv2(x))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def train(model, loader, optimizer, epochs: int, epoch_end) -> None:
    for epoch in range(1, epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for features, labels in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(features), labels)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            seen += len(labels)
        epoch_end(model, epoch, total / seen)


def fit(run, epochs: int = 40, lr: float = 0.05, batch_size: int = 32):
    """Through reprogrid: the loop above, each epoch recorded by run.epoch_end."""
    loader = DataLoader(run.train_data, batch_size=batch_size, shuffle=True)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    train(model, loader, optimizer, epochs, lambda m, e, loss: run.epoch_end(m, e, train_loss=loss))
    return model


def plain(x_train, y_train, seed: int, threads: int = 1, epochs: int = 40, lr: float = 0.05,
          batch_size: int = 32) -> float:
    """Without reprogrid: the same loop; the seconds from building the loader to the
    last epoch's end (what reprogrid's train_seconds spans around `fit`)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    started = time.perf_counter()
    loader = DataLoader(TensorDataset(torch.as_tensor(x_train), torch.as_tensor(y_train)), batch_size=batch_size,
                        shuffle=True)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    train(model, loader, optimizer, epochs, lambda m, e, loss: None)
    return time.perf_counter() - started
