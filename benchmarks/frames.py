"""The frames the speed benchmarks train on: a LunarLander collection's (`--root`), or
synthetic ones like them (dark sky, white ground, a small moving object)."""

from __future__ import annotations

import numpy as np


def synthetic_collection(n: int, size: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), np.uint8)
    ground = (size * 0.7 + 4 * np.sin(np.arange(size) / 5)).astype(int)
    for i in range(size):
        images[:, ground[i] :, i] = 255
    pos = rng.uniform(4, size - 4, size=(n, 2)).astype(np.float32)
    for k, (x, y) in enumerate(pos.astype(int)):
        images[k, y - 1 : y + 2, x - 2 : x + 2] = (128, 102, 230)
    return images, pos


def uint8_frames(n: int, root: str | None = None) -> np.ndarray:
    """n frames, uint8 (N, 64, 64, 3): the first n of a collection's, or synthetic."""
    if root is None:
        return synthetic_collection(n)[0]
    images = np.load(f"{root}/images.npy", mmap_mode="r")
    if len(images) < n:
        raise SystemExit(f"{root} holds {len(images)} frames, fewer than --images {n}")
    return np.array(images[:n])


def frames(n: int, root: str | None = None):
    """The same frames as a float32 tensor (N, 3, 64, 64) in [0, 1], as the study holds them."""
    import torch

    return torch.from_numpy(uint8_frames(n, root)).permute(0, 3, 1, 2).float() / 255
