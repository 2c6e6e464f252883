"""A training loop of your own that can be interrupted and resumed, and a forgetful twin.

`run.resumable(...)` names what the loop trains with; reprogrid checkpoints it with every
generator `run` handed out and the global ones, and restores it all when the run
resumes. This loop also keeps a generator of its own, `jitter` (a brightness jitter
from Python's `random.Random`): a generator only the loop knows about must be named too.
With `forget_jitter: true` it is not, and a resumed run draws epoch 1's jitter again.
"""

import random

import torch
from torch.nn import functional as F


def fit(run, epochs: int, lr: float, forget_jitter: bool = False):
    model = run.model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    jitter = random.Random(run.seed("augment"))
    loader = run.loader(run.train_data, batch_size=64, shuffle=True)
    own = {} if forget_jitter else {"jitter": jitter}
    first = run.resumable(model=model, optimizer=optimizer, scheduler=schedule, **own)
    for epoch in range(first, epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for inputs, labels in loader:
            brightness = 1.0 + 0.2 * (jitter.random() - 0.5)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs * brightness), labels)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(labels), seen + len(labels)
        schedule.step()
        run.epoch_end(model, epoch, train_loss=total / seen)  # last in the epoch: it checkpoints
    return model
