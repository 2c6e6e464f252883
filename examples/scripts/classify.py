"""Train a small classifier on scikit-learn's digits, the way many public PyTorch
examples are written: argparse, torch.manual_seed(args.seed), a shuffling DataLoader,
dropout, and pixel noise drawn from NumPy's global generator (never seeded here).

    python classify.py --seed 1 --epochs 3 --out /tmp/run1
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def augment(images):
    return images + np.random.normal(0.0, 0.05, images.shape).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description="digits classifier")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    train = TensorDataset(x[:1400], y[:1400])
    x_test, y_test = x[1400:], y[1400:]
    loader = DataLoader(train, batch_size=32, shuffle=True)

    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    for _ in range(args.epochs):
        model.train()
        for images, labels in loader:
            images = torch.from_numpy(augment(images.numpy()))
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    model.eval()
    with torch.no_grad():
        logits = model(x_test)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"test_accuracy": float((logits.argmax(1) == y_test).float().mean()),
               "test_loss": float(nn.functional.cross_entropy(logits, y_test))}
    (out / "metrics.json").write_text(json.dumps(metrics))
    np.savez(out / "predictions.npz", logits=logits.numpy(), labels=y_test.numpy())
    torch.save(model.state_dict(), out / "model.pt")


if __name__ == "__main__":
    main()
