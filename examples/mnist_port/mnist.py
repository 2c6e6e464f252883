"""The PyTorch MNIST example (pytorch/examples, mnist/main.py), ported the way a new user
ports it: `Net`, `train` and the DataLoader are the script's own, unchanged but for the
sizes (scikit-learn's 8x8 digits stand in for MNIST's 28x28, which cannot be downloaded
here). `main()`'s argparse and data loading give way to `fit(run, ...)`: the data come
from `run.train_data`, and each epoch ends with `run.epoch_end`.

Like the original, it builds its DataLoader before its model and shuffles with torch's
global generator; reprogrid seeds that generator from the `dropout` source while
training, so dropout masks and the batch order both follow it. The config names `Net`
as the model too, so that reprogrid can rebuild it to evaluate it.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = x.view(-1, 1, 8, 8)
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(log_interval, model, device, train_loader, optimizer, epoch):
    model.train()
    total, seen = 0.0, 0
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        total, seen = total + loss.item() * len(data), seen + len(data)
        if batch_idx % log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
    return total / seen


def fit(run, epochs=4, lr=1.0, gamma=0.7, batch_size=64, log_interval=10):
    device = run.device
    train_loader = torch.utils.data.DataLoader(run.train_data, batch_size=batch_size, shuffle=True)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=gamma)
    for epoch in range(1, epochs + 1):
        train_loss = train(log_interval, model, device, train_loader, optimizer, epoch)
        scheduler.step()
        run.epoch_end(model, epoch, train_loss=train_loss)
    return model
