"""The study's own way of training an autoencoder, written from its published description
(Pihlgren et al. 2020, and the experiment code they published: its FourLayerCVAE and training
loop), for measuring percae against it on the same frames. Nothing of that code is copied; this
follows what it does:

- the model: encoder of four 4x4 stride-2 convolutions (3-32-64-128-256), each with BatchNorm and
  ReLU; flattened to two linear layers, mu and logvar (the logvar layer is computed for an AE
  too, then unused); decoder: linear z -> 1024 x h x w and ReLU, four transposed convolutions
  (1024-128-64-32-3, kernels 5, 5, 6, 6, stride 2), BatchNorm and ReLU on the first three, a
  sigmoid at the end; PyTorch's default initialisation; float32, contiguous memory;
- the loss: MSE of the flattened images, or of the flattened sigmoid features of a frozen network
  (AlexNet's features up to its second ReLU, then a sigmoid) of the target and of the
  reconstruction, both computed in every step;
- the data: the whole set as a float32 tensor in host memory, a DataLoader over a TensorDataset
  (image, image), shuffled, for training and for validation alike;
- the loop: per batch, zero the gradients, forward, the loss, `.item()` of it, backward (in
  validation too: the study's loop does not skip it), an optimizer step when training, a
  progress line printed; Adam at PyTorch's defaults; the whole model pickled to disk before
  training and after every epoch whose validation loss is the best so far.

    python benchmarks/study_baseline.py --images 10240 --epochs 3 --loss perceptual
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class StudyAutoencoder(nn.Module):
    def __init__(self, z: int = 32, size: int = 64, variational: bool = False):
        super().__init__()
        layers, c = [], 3
        for width in (32, 64, 128, 256):
            layers += [nn.Conv2d(c, width, 4, stride=2), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        self.encoder = nn.Sequential(*layers)
        side = size
        for _ in range(4):
            side = (side - 4) // 2 + 1
        flat = 256 * side * side
        self.mu, self.logvar = nn.Linear(flat, z), nn.Linear(flat, z)
        self.grid = (size - 64) // 16 + 1
        self.dense = nn.Linear(z, 1024 * self.grid * self.grid)
        decoder, c = [], 1024
        for width, kernel in ((128, 5), (64, 5), (32, 6)):
            decoder += [
                nn.ConvTranspose2d(c, width, kernel, stride=2),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            c = width
        decoder += [nn.ConvTranspose2d(32, 3, 6, stride=2), nn.Sigmoid()]
        self.decoder = nn.Sequential(*decoder)
        self.variational = variational

    def forward(self, x):
        h = self.encoder(x).flatten(1)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.variational else mu
        y = torch.relu(self.dense(z)).view(len(z), 1024, self.grid, self.grid)
        return self.decoder(y), mu, logvar


class SigmoidFeatures(nn.Module):
    """A frozen network's features, then a sigmoid, flattened."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network.eval()
        for p in self.network.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return torch.sigmoid(self.network(x)).flatten(1)


def alexnet_relu2(seed: int = 0) -> nn.Module:
    """AlexNet's trunk to its second ReLU (random seeded weights offline, as percae's
    alexnet-random; the arithmetic is ImageNet AlexNet's)."""
    from torchvision.models import alexnet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return alexnet(weights=None).features[:5]


def study_loss(model: StudyAutoencoder, perceptual: nn.Module | None, output, x):
    reconstruction, mu, logvar = output
    if perceptual is not None:
        target, reconstruction = perceptual(x), perceptual(reconstruction)
    else:
        target, reconstruction = x.flatten(1), reconstruction.flatten(1)
    loss = F.mse_loss(reconstruction, target)
    if model.variational:
        loss = loss + 0.01 * -torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
    return loss


def run_epoch(model, perceptual, loader, optimizer, train: bool, out) -> float:
    model.train(train)
    total, start = 0.0, time.time()
    for i, (x, target) in enumerate(loader):
        optimizer.zero_grad()
        loss = study_loss(model, perceptual, model(x), target)
        total += loss.item()
        loss.backward()  # in validation too
        if train:
            optimizer.step()
        print(
            f"\r[{i + 1}/{len(loader)}] loss {total / (i + 1):.5f} {time.time() - start:.1f}s",
            end="",
            file=out,
        )
    return total / (i + 1)


def train_study_way(
    images: torch.Tensor,
    val_images: torch.Tensor,
    epochs: int,
    batch: int,
    loss: str,
    seed: int = 0,
    on_epoch=None,
) -> list[dict]:
    """Train as the study does; each epoch's (train loss, val loss, seconds, images/s)."""
    torch.manual_seed(seed)
    model = StudyAutoencoder()
    perceptual = SigmoidFeatures(alexnet_relu2()) if loss == "perceptual" else None
    optimizer = torch.optim.Adam(model.parameters())
    train_loader = DataLoader(TensorDataset(images, images), batch, shuffle=True)
    val_loader = DataLoader(TensorDataset(val_images, val_images), batch, shuffle=True)
    out = io.StringIO()  # the study prints a line per batch
    rows, best = [], float("inf")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.pt")
        torch.save(model, path)
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            train_loss = run_epoch(model, perceptual, train_loader, optimizer, True, out)
            val_loss = run_epoch(model, perceptual, val_loader, optimizer, False, out)
            if val_loss < best:
                best = val_loss
                torch.save(model, path)
            seconds = time.perf_counter() - t0
            rows.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "seconds": seconds,
                    "images_per_s": (len(images) + len(val_images)) / seconds,
                }
            )
            if on_epoch:
                on_epoch(rows[-1])
            out.seek(0), out.truncate()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10240)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--loss", choices=("pixel", "perceptual"), default="pixel")
    parser.add_argument(
        "--root", default=None, help="a LunarLander collection (else synthetic frames)"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(__file__))
    from frames import frames

    data = frames(args.images, args.root)
    n_val = len(data) // 5
    rows = train_study_way(
        data[n_val:],
        data[:n_val],
        args.epochs,
        args.batch,
        args.loss,
        on_epoch=lambda r: print(r, flush=True),
    )
    print(rows)


if __name__ == "__main__":
    main()
