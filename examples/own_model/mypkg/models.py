"""A residual MLP with its own initialisation (orthogonal weights, zero biases)."""

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return x + self.dropout(torch.relu(self.linear(self.norm(x))))


class ResidualMLP(nn.Module):
    def __init__(self, inputs: int, outputs: int, width: int, depth: int, dropout: float):
        super().__init__()
        self.stem = nn.Linear(inputs, width)
        self.blocks = nn.Sequential(*(Block(width, dropout) for _ in range(depth)))
        self.head = nn.Linear(width, outputs)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                # drawn from torch's global generator: reprogrid's `init` seed governs it
                nn.init.orthogonal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.head(self.blocks(torch.relu(self.stem(x))))


def build(inputs: int = 2, outputs: int = 3, width: int = 64, depth: int = 2, dropout: float = 0.1) -> nn.Module:
    return ResidualMLP(inputs, outputs, width, depth, dropout)
