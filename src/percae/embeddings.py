"""Embeddings (the encoder's mu) of an image set, computed once per autoencoder and cached as
a plain array; a dataset's part encoded with its targets for a probe (`percae encode`);
reconstructions and their L1 error."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError
from .files import atomic_write_bytes
from .data import ImageSet
from .device import DeviceImages, resolve_device, to_float_batch
from .layout import EncodedFiles
from .model import Autoencoder, load_autoencoder


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


@dataclass
class Encoded:
    """A part's embeddings and what a probe needs of it: its targets (positions or classes) and
    groups (rollouts), where the data has them, and what was encoded."""

    embeddings: np.ndarray
    targets: np.ndarray | None
    groups: np.ndarray | None
    record: dict


# Parts whose images the autoencoder trained on: a probe of them measures memory, not use.
TRAINED_ON = ("autoencoder", "all")


def encode_data(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    dataset: str = "lunarlander",
    part: str = "all",
    device: str = "auto",
) -> Encoded:
    """The embeddings (mu) by the run in `run_dir` of a .npy file of images (uint8 (N, S, S, 3)
    or float (N, 3, S, S)), or of a part of a dataset: autoencoder, predictor, test, or all its
    images in file order (for datasets whose parts share one file: lunarlander, folder)."""
    from .data import load_study_data

    resolve_device(device)
    model = load_autoencoder(run_dir)
    record = {"run": str(run_dir), "data": str(data), "dataset": None, "part": None, "task": None}
    if Path(data).is_file():
        if not str(data).endswith(".npy"):
            raise ConfigError(f"--data {data}: a file of images must be a .npy array")
        try:
            images = np.load(data, mmap_mode="r")  # never unpickles
        except ValueError as e:
            raise ConfigError(f"--data {data} is not a plain .npy array ({e})") from None
        z = encode_images(model, images, device=device)
        return Encoded(z, None, None, {**record, "images": len(z)})
    # The images at the size the model takes: a folder dataset is resized to it.
    study = load_study_data(dataset, data, image_size=model.config.image_size)
    if part == "all":
        base = study.autoencoder
        if any(p.images is not base.images for p in (study.predictor, study.test)):
            # STL-10 and SVHN keep each part in its own file: "all" would silently mean one of them.
            raise ConfigError(
                f"--part all needs one image file for every part, and {dataset} has one per part; "
                "encode each with --part autoencoder, predictor or test"
            )
        images = ImageSet(base.images, base.targets, base.groups, tile=base.tile, name=base.name)
    else:
        images = getattr(study, part)
    z = encode_images(model, images, device=device)
    targets = images.selected_targets() if images.targets is not None else None
    return Encoded(
        z,
        targets,
        images.selected_groups() if images.groups is not None else None,
        {**record, "dataset": dataset, "part": part, "task": study.task, "images": len(z)},
    )


def write_encoded(out: str | os.PathLike, encoded: Encoded) -> None:
    """A .npy file of the embeddings alone, or a folder (`layout.EncodedFiles`) of the
    embeddings, their targets and groups and encoding.json, which `percae probe --embeddings`
    reads as it is. Each file is written whole; encoding.json goes last."""
    from .files import atomic_write_json

    if str(out).endswith(".npy"):
        atomic_write_bytes(out, lambda f: np.save(f, encoded.embeddings))
        return
    files = EncodedFiles(out)
    for path, array in (
        (files.embeddings, encoded.embeddings),
        (files.targets, encoded.targets),
        (files.groups, encoded.groups),
    ):
        if array is not None:
            atomic_write_bytes(path, lambda f, a=array: np.save(f, a))
    atomic_write_json(files.record, encoded.record)
