"""The built-in models. Their input width is the data's (64 for digits, 8x8 images);
the CNN needs square images (a width that is a perfect square).

`mlp` and `cnn` classify; `vae` reconstructs and draws its latent noise from the
generator it is handed (the `sampling` source), never from torch's global one.
Weight initialisation is PyTorch's default, drawn from torch's global generator, which
the caller seeds with the `init` source just before `build_model`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from reprogrid.inputs.data import N_FEATURES


def _mlp_layers(sizes: list[int], dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


class MLP(nn.Sequential):
    def __init__(self, hidden: list[int], dropout: float, n_classes: int, n_features: int = N_FEATURES):
        sizes = [n_features, *hidden]
        super().__init__(*_mlp_layers(sizes, dropout), nn.Linear(sizes[-1], n_classes))


class CNN(nn.Module):
    """Two 3x3 convolutions with one 2x2 pooling between them, then a linear head."""

    def __init__(self, channels: list[int], dropout: float, n_classes: int, n_features: int = N_FEATURES):
        super().__init__()
        self.side = math.isqrt(n_features)
        if self.side * self.side != n_features or self.side < 2:
            raise ValueError(f"model cnn takes square images; {n_features} features per example are not "
                             "a square image's pixels (use model mlp)")
        first, second = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, first, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1), nn.ReLU(), nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(second * (self.side // 2) ** 2, n_classes)

    def forward(self, x):
        x = x.view(-1, 1, self.side, self.side)
        return self.head(self.dropout(self.features(x)))


class VAE(nn.Module):
    """A Bernoulli-likelihood VAE; `forward` returns (reconstruction logits, mu, logvar)."""

    def __init__(self, hidden: list[int], latent: int, dropout: float, n_features: int = N_FEATURES):
        super().__init__()
        self.encoder = nn.Sequential(*_mlp_layers([n_features, *hidden], dropout))
        self.to_stats = nn.Linear(hidden[-1], 2 * latent)
        decoder_sizes = [latent, *reversed(hidden)]
        self.decoder = nn.Sequential(
            *_mlp_layers(decoder_sizes, 0.0), nn.Linear(decoder_sizes[-1], n_features)
        )

    def forward(self, x, generator: torch.Generator | None = None):
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        if generator is None:  # evaluation: decode the posterior mean
            z = mu
        else:
            noise = torch.randn(
                mu.shape, generator=generator, dtype=mu.dtype, device=mu.device
            )
            z = mu + noise * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


def negative_elbo(recon_logits, mu, logvar, target):
    """Per-example mean of the negative ELBO (Bernoulli reconstruction + Gaussian KL)."""
    reconstruction = F.binary_cross_entropy_with_logits(recon_logits, target, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (reconstruction + kl) / target.shape[0]


def build_model(model: dict, n_classes: int, n_features: int = N_FEATURES) -> nn.Module:
    """A built-in model taking `n_features` inputs, or the user's `factory(**kwargs)` (the
    caller has seeded torch's global generator with the `init` stream, which governs the
    factory's own init too)."""
    if "factory" in model:
        from reprogrid.inputs import usercode as user

        built = user.call_factory(model["factory"], "model.factory", **model["kwargs"])
        if not isinstance(built, nn.Module):
            raise user.ConfigError("model.factory", f"{model['factory']} returned {type(built).__name__}, "
                                                    "not a torch.nn.Module")
        return built
    name = model["name"]
    if name == "mlp":
        return MLP(model["hidden"], model["dropout"], n_classes, n_features)
    if name == "cnn":
        return CNN(model["channels"], model["dropout"], n_classes, n_features)
    if name == "vae":
        return VAE(model["hidden"], model["latent"], model["dropout"], n_features)
    raise ValueError(f"unknown model {name!r}")
