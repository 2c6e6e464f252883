"""The PyTorch VAE example (pytorch/examples, vae/main.py), ported the way a new user
ports it: `VAE` and `loss_function` are the script's own, unchanged but for the sizes
(scikit-learn's 8x8 digits, scaled to [0, 1], stand in for MNIST). Its `forward` returns
a tuple and draws its latent noise with `torch.randn_like`, from torch's global
generator, which reprogrid seeds from the `dropout` source while training.

`fit(run, ...)` replaces `main()`'s training, with the loader swapped for `run.loader`
(its order is the `order` stream) and the model built by `run.model()` (the config
names `VAE`), in the script's order: loader first. `evaluate(model, run)` replaces its
`test()`: reprogrid's own evaluation takes logits, which a VAE does not return.
"""

import torch
import torch.utils.data
from torch import nn, optim
from torch.nn import functional as F


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()

        self.fc1 = nn.Linear(64, 32)
        self.fc21 = nn.Linear(32, 4)
        self.fc22 = nn.Linear(32, 4)
        self.fc3 = nn.Linear(4, 32)
        self.fc4 = nn.Linear(32, 64)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5*logvar)
        eps = torch.randn_like(std)
        return mu + eps*std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 64))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


# Reconstruction + KL divergence losses summed over all elements and batch
def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 64), reduction='sum')

    # see Appendix B from VAE paper:
    # Kingma and Welling. Auto-Encoding Variational Bayes. ICLR, 2014
    # https://arxiv.org/abs/1312.6114
    # 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

    return BCE + KLD


def train(model, device, train_loader, optimizer, epoch, log_interval):
    model.train()
    train_loss = 0
    for batch_idx, (data, _) in enumerate(train_loader):
        data = data.to(device)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
        if batch_idx % log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader),
                loss.item() / len(data)))
    return train_loss / len(train_loader.dataset)


def fit(run, epochs=3, batch_size=128, lr=1e-3, log_interval=10):
    train_loader = run.loader(run.train_data, batch_size=batch_size, shuffle=True)
    model = run.model()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        train_loss = train(model, run.device, train_loader, optimizer, epoch, log_interval)
        run.epoch_end(model, epoch, train_loss=train_loss)
    return model


def evaluate(model, run):
    model.eval()
    test_loader = torch.utils.data.DataLoader(run.test_data, batch_size=128)
    test_loss, outputs = 0, []
    with torch.no_grad():
        for data, _ in test_loader:
            data = data.to(run.device)
            recon_batch, mu, logvar = model(data)
            test_loss += loss_function(recon_batch, data, mu, logvar).item()
            outputs.append(recon_batch)
    return {"metrics": {"test_loss": test_loss / len(test_loader.dataset)}, "outputs": torch.cat(outputs)}
