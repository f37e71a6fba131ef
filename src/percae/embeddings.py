"""Embeddings (the encoder's mu) of an image set, computed once per autoencoder and
cached as a plain array; reconstructions and their L1 error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, atomic_write_bytes
from .data import ImageSet
from .device import DeviceImages, resolve_device, to_float_batch
from .model import Autoencoder


@torch.no_grad()
def encode_images(
    model: Autoencoder,
    images: ImageSet | np.ndarray | torch.Tensor,
    batch_size: int = 1024,
    device: str = "auto",
) -> np.ndarray:
    """float32 (N, z): the deterministic embedding (mu) of every image, in order.

    `images`: an ImageSet, or an array or tensor of one's own: uint8 (N, S, S, 3) as percae
    stores images, or float (N, 3, S, S) in [0, 1] as PyTorch holds them. Images of another
    size than the model's, and embeddings that come out NaN or inf, are refused."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    dev = resolve_device(device)
    model.to(dev).eval()
    if isinstance(images, ImageSet):
        check_fits(model, images.image_size)
        batches = DeviceImages(images, dev).batches(batch_size)
    else:
        batches = _array_batches(model, images, batch_size, dev)
    out = [model.encode(x).float().cpu() for x in batches]
    z = torch.cat(out).numpy() if out else np.zeros((0, model.config.latent_dim), np.float32)
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        name = getattr(images, "name", "")
        raise ConfigError(
            f"the autoencoder's embeddings of {int(bad.sum())} of {len(z)} images "
            f"{'(' + name + ') ' if name else ''}are NaN or inf: its weights are too large "
            "for these images; retrain it with a lower learning rate"
        )
    return z


def check_fits(model: Autoencoder, image_size: int) -> None:
    if image_size != model.config.image_size:
        raise ConfigError(
            f"the autoencoder takes {model.config.image_size} px images, these are "
            f"{image_size} px; resize them or use a model trained at that size"
        )


def _array_batches(model: Autoencoder, images, batch_size: int, device: torch.device):
    """Float batches (B, 3, S, S) on `device` from a uint8 NHWC or float NCHW array or tensor
    (a memory-mapped array is read a batch at a time)."""
    if isinstance(images, torch.Tensor):
        shape, uint8, floating = (
            tuple(images.shape),
            images.dtype == torch.uint8,
            images.is_floating_point(),
        )
        dtype, take = images.dtype, (lambda a, b: images[a:b])
    else:
        images = np.asarray(images) if not isinstance(images, np.ndarray) else images
        shape, uint8, floating = images.shape, images.dtype == np.uint8, images.dtype.kind == "f"
        # In this machine's byte order (a .npy written elsewhere may be big-endian; torch takes
        # native only).
        dtype, take = (
            images.dtype,
            (
                lambda a, b: torch.from_numpy(
                    np.array(images[a:b], dtype=images.dtype.newbyteorder("="))
                )
            ),
        )
    if len(shape) != 4:
        raise ConfigError(
            "images must be 4-dimensional (N, S, S, 3) uint8 or (N, 3, S, S) float, got shape "
            f"{shape}"
        )
    if uint8:
        if shape[3] != 3:
            raise ConfigError(f"uint8 images must be (N, S, S, 3), got shape {shape}")
        size = shape[1:3]
    elif floating:
        if shape[1] != 3:
            raise ConfigError(f"float images must be (N, 3, S, S) in [0, 1], got shape {shape}")
        size = shape[2:4]
    else:
        raise ConfigError(f"images must be uint8 or float, got {dtype}")
    if size[0] != size[1]:
        raise ConfigError(f"images must be square, got {size[0]} x {size[1]} px")
    check_fits(model, size[0])
    for start in range(0, shape[0], batch_size):
        batch = take(start, start + batch_size).to(device)
        if uint8:
            yield to_float_batch(batch)
            continue
        batch = batch.float()
        # Floats in 0-255, say, would give embeddings of images the model never saw.
        low, high = (x.item() for x in torch.aminmax(batch)) if len(batch) else (0.0, 1.0)
        if not (-1e-6 <= low and high <= 1 + 1e-6):
            raise ConfigError(
                f"float images must be in [0, 1]; images {start} to {start + len(batch) - 1} hold "
                f"values from {low:.4g} to {high:.4g} (divide by 255, or give uint8 (N, S, S, 3))"
            )
        yield batch


@torch.no_grad()
def reconstruction_l1(
    model: Autoencoder, images: ImageSet, batch_size: int = 1024, device: str = "auto"
) -> float:
    """Mean absolute pixel error (images in [0, 1]) of reconstructions from mu."""
    dev = resolve_device(device)
    model.to(dev).eval()
    data = DeviceImages(images, dev)
    total = torch.zeros((), dtype=torch.float64, device=dev)
    for x in data.batches(batch_size):
        total += (model.decode(model.encode(x)) - x).abs().mean(dim=(1, 2, 3)).sum().double()
    return float(total.item() / max(1, len(images)))


@torch.no_grad()
def reconstruct(
    model: Autoencoder, images: ImageSet, positions: np.ndarray, device: str = "auto"
) -> np.ndarray:
    """uint8 (B, H, W, 3) reconstructions of the images at `positions`."""
    dev = resolve_device(device)
    model.to(dev).eval()
    x = DeviceImages(images.subset(positions), dev).batch(torch.arange(len(positions)))
    y = model.decode(model.encode(x))
    return (y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def cached_embeddings(
    path: str | os.PathLike, model: Autoencoder, images: ImageSet, device: str = "auto"
) -> np.ndarray:
    """Encode once; later calls read the saved array, if it is the embedding of these images
    by this model (float32 (N, z), finite); a damaged one is computed again."""
    path = Path(path)
    expected = (len(images), model.config.latent_dim)
    try:
        saved = np.load(path) if path.exists() else None  # never unpickles
    except (OSError, ValueError, EOFError):
        saved = None
    if (
        saved is not None
        and saved.dtype == np.float32
        and saved.shape == expected
        and np.isfinite(saved).all()
    ):
        return saved
    z = encode_images(model, images, device=device)
    atomic_write_bytes(path, lambda f: np.save(f, z))
    return z
