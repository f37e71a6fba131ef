"""Embeddings (the encoder's mu) of an image set, computed once per autoencoder and
cached as a plain array; reconstructions and their L1 error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, atomic_write_bytes
from .data import ImageSet
from .device import DeviceImages, resolve_device
from .model import Autoencoder


@torch.no_grad()
def encode_images(model: Autoencoder, images: ImageSet, batch_size: int = 1024, device: str = "auto") -> np.ndarray:
    """float32 (N, z): the deterministic embedding (mu) of every image, in order. Images of
    another size than the model's, and embeddings that come out NaN or inf, are refused."""
    check_fits(model, images)
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    dev = resolve_device(device)
    model.to(dev).eval()
    data = DeviceImages(images, dev)
    out = [model.encode(x).float().cpu() for x in data.batches(batch_size)]
    z = torch.cat(out).numpy() if out else np.zeros((0, model.config.latent_dim), np.float32)
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        raise ConfigError(f"the autoencoder's embeddings of {int(bad.sum())} of {len(z)} images "
                          f"{'(' + images.name + ') ' if images.name else ''}are NaN or inf: its weights are too large "
                          "for these images; retrain it with a lower learning rate")
    return z


def check_fits(model: Autoencoder, images: ImageSet) -> None:
    if images.image_size != model.config.image_size:
        raise ConfigError(f"the autoencoder takes {model.config.image_size} px images, these are "
                          f"{images.image_size} px; resize them or use a model trained at that size")


@torch.no_grad()
def reconstruction_l1(model: Autoencoder, images: ImageSet, batch_size: int = 1024, device: str = "auto") -> float:
    """Mean absolute pixel error (images in [0, 1]) of reconstructions from mu."""
    dev = resolve_device(device)
    model.to(dev).eval()
    data = DeviceImages(images, dev)
    total = torch.zeros((), dtype=torch.float64, device=dev)
    for x in data.batches(batch_size):
        total += (model.decode(model.encode(x)) - x).abs().mean(dim=(1, 2, 3)).sum().double()
    return float(total.item() / max(1, len(images)))


@torch.no_grad()
def reconstruct(model: Autoencoder, images: ImageSet, positions: np.ndarray, device: str = "auto") -> np.ndarray:
    """uint8 (B, H, W, 3) reconstructions of the images at `positions`."""
    dev = resolve_device(device)
    model.to(dev).eval()
    x = DeviceImages(images.subset(positions), dev).batch(torch.arange(len(positions)))
    y = model.decode(model.encode(x))
    return (y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def cached_embeddings(path: str | os.PathLike, model: Autoencoder, images: ImageSet, device: str = "auto") -> np.ndarray:
    """Encode once; later calls read the saved array."""
    path = Path(path)
    if path.exists():
        return np.load(path)
    z = encode_images(model, images, device=device)
    atomic_write_bytes(path, lambda f: np.save(f, z))
    return z
