"""Image collections as uint8 arrays (memory-mapped where they are big), their labels,
and the leak-free splits the study uses.

An `ImageSet` never holds a float copy of its images: batches are gathered by index
as uint8 and converted on the device (`to_float_batch`, which `percae.device` calls there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError

Task = Literal["position", "classification"]


# Positions are pixel coordinates; beyond this their squared errors overflow float32.
MAX_POSITION = 1e6


def check_image_size(image_size: int, error: type[Exception] = DataError) -> None:
    """The autoencoders take square images of 64 + 16n pixels (the one place of that rule)."""
    if image_size < 64 or (image_size - 64) % 16:
        raise error(
            f"--image-size {image_size} is not supported: the autoencoders take 64 + 16n pixels "
            "(64, 80, 96, ...)"
        )


def require_files(dataset: str, folder, described: dict[str, str], how_to_get: str) -> None:
    """Refuse a dataset folder that lacks any of the files in `described` (file name -> what
    it is, e.g. its size and address), naming each missing one and how to get them."""
    missing = [name for name in described if not (Path(folder) / name).is_file()]
    if missing:
        listing = "; ".join(f"{name} ({described[name]})" for name in missing)
        raise DataError(f"{dataset} is incomplete in {folder}: missing {listing}. {how_to_get}")


@dataclass
class ImageSet:
    """Images (N, H, W, 3) uint8 (possibly a memmap), optional targets and split groups.

    `indices` selects a subset without copying the images; `tile` > 1 repeats each
    image in a tile x tile grid when a batch is converted (SVHN's 2x2 grid).
    """

    images: np.ndarray
    targets: np.ndarray | None = None
    groups: np.ndarray | None = None
    indices: np.ndarray | None = None
    tile: int = 1
    num_classes: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise DataError(
                f"{self.name or 'images'}: expected a uint8 array of shape (N, H, W, 3), "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.indices is None:
            self.indices = np.arange(len(self.images), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        """(image, target) for a `torch.utils.data.DataLoader`: the image a float tensor (3, S, S)
        in [0, 1], as the autoencoders see it (tiled where the set is); the target the position
        (float32 (2,)) or the class (int), -1 where the set has no labels (as torchvision's
        STL10)."""
        import torch  # here, not at the top: reading data needs no torch

        if not -len(self) <= position < len(self):
            raise IndexError(f"position {position} is outside this set of {len(self)} images")
        pixels = self.images[self.indices[position]]
        image = to_float_batch(torch.from_numpy(np.array(pixels))[None], self.tile)[0]
        if self.targets is None:
            return image, -1
        target = self.targets[self.indices[position]]
        return image, (
            torch.from_numpy(np.array(target, dtype=np.float32)) if np.ndim(target) else int(target)
        )

    @property
    def image_size(self) -> int:
        return self.images.shape[1] * self.tile

    @property
    def nbytes(self) -> int:
        """Size of the selected images as uint8 (before tiling)."""
        return len(self) * int(np.prod(self.images.shape[1:]))

    def subset(self, positions: np.ndarray) -> "ImageSet":
        """The images at `positions` (0..len-1) of this set, sharing storage."""
        return ImageSet(
            images=self.images,
            targets=self.targets,
            groups=self.groups,
            indices=self.indices[np.asarray(positions, dtype=np.int64)],
            tile=self.tile,
            num_classes=self.num_classes,
            name=self.name,
        )

    def gather(self, positions: np.ndarray | slice) -> np.ndarray:
        """uint8 images (B, H, W, 3) at `positions`; sorted reads keep memmaps fast."""
        idx = self.indices[positions]
        if (isinstance(self.images, np.memmap) or not self.images.flags.c_contiguous) and np.any(
            idx[1:] < idx[:-1]
        ):
            # Unsorted: read in file order, then put in place (a second copy, so only when needed:
            # materialising a large sorted set must not hold it twice).
            order = np.argsort(idx, kind="stable")
            out = np.empty((len(idx),) + self.images.shape[1:], dtype=np.uint8)
            out[order] = self.images[idx[order]]
            return out
        return self.images[idx]

    def materialize(self) -> np.ndarray:
        """All selected images as one contiguous uint8 array (uint8, never float)."""
        return self.gather(slice(None))

    def selected_targets(self) -> np.ndarray:
        if self.targets is None:
            raise DataError(f"{self.name or 'this image set'} has no labels")
        return self.targets[self.indices]

    def selected_groups(self) -> np.ndarray:
        if self.groups is None:
            return self.indices.copy()
        return self.groups[self.indices]

    def fingerprint(self, sample: int = 256) -> str:
        """A content fingerprint, cheap at any size: the shape, the tiling, every selected target
        and group, and the bytes of a fixed, evenly spaced sample of the images. Other images,
        labels or a different selection give another (a change that spares every sampled image
        and every label is not seen)."""
        import hashlib

        h = hashlib.sha256(repr((len(self), self.images.shape[1:], self.tile)).encode())
        for part in (self.targets, self.groups):
            if part is not None:
                h.update(np.ascontiguousarray(part[self.indices]).tobytes())
        positions = np.unique(
            np.linspace(0, len(self) - 1, min(len(self), sample)).round().astype(np.int64)
        )
        h.update(np.ascontiguousarray(self.gather(positions)).tobytes())
        return h.hexdigest()[:16]


def to_float_batch(batch, tile: int = 1):
    """uint8 torch tensor (B, H, W, 3) -> float (B, 3, H*tile, W*tile) in [0, 1]: the one
    conversion of images, for a batch on the device and for a single item alike.

    The permute of NHWC memory is already channels-last, which convolutions prefer.
    """
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    if tile > 1:
        x = x.repeat(1, 1, tile, tile)
    return x


def split_by_group(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a (1 - fraction, fraction) split in which no group is on both sides.

    Frames of one LunarLander rollout are near-copies of each other: splitting frames
    rather than rollouts would leak and make validation meaningless.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split fraction must be in (0, 1), got {fraction}")
    unique = np.unique(groups)
    if len(unique) < 2:
        raise DataError(f"cannot split {len(unique)} group(s) in two; use more rollouts/images")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(unique)
    n_second = min(max(1, int(round(fraction * len(unique)))), len(unique) - 1)
    second = np.isin(groups, shuffled[:n_second])
    return np.flatnonzero(~second), np.flatnonzero(second)


def split(image_set: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Split an image set (by group where it has groups) into (1 - fraction, fraction)."""
    first, second = split_by_group(image_set.selected_groups(), fraction, seed)
    return image_set.subset(first), image_set.subset(second)


@dataclass
class StudyData:
    """The three parts of Table I: autoencoder, predictor and test images."""

    dataset: str
    task: Task
    autoencoder: ImageSet
    predictor: ImageSet
    test: ImageSet
    num_classes: int | None = None
    notes: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """The three parts' fingerprints together: the study's data, by content."""
        import hashlib

        parts = "".join(
            part.fingerprint() for part in (self.autoencoder, self.predictor, self.test)
        )
        return hashlib.sha256(parts.encode()).hexdigest()[:16]

    def targets(self, images: ImageSet) -> np.ndarray:
        """float32 targets of `images` (a part of this data) for the predictors: positions
        as they are, classes one-hot."""
        y = images.selected_targets()
        if self.task == "classification":
            return np.eye(self.num_classes or int(y.max()) + 1, dtype=np.float32)[y]
        return y.astype(np.float32)

    def validate(self, root=None) -> None:
        """Refuse data no study can use, before anything is trained on it: targets that are
        not finite, labels outside the classes, a single class, or too few groups to split."""
        where = f" in {root}" if root is not None else ""
        for part_name, part in (
            ("autoencoder", self.autoencoder),
            ("predictor", self.predictor),
            ("test", self.test),
        ):
            height, width = part.images.shape[1:3]
            size = height * part.tile
            try:
                if height != width:
                    raise DataError("the images are not square")
                check_image_size(size)
            except DataError:
                raise DataError(
                    f"{self.dataset}{where}: the {part_name} images are {height} x {width} px"
                    + (f" (shown as {size} px tiles)" if part.tile > 1 else "")
                    + "; the autoencoders take square images of 64 + 16n px (64, 80, 96, ...): "
                    "regenerate or resize the data"
                ) from None
        for part_name, part in (("predictor", self.predictor), ("test", self.test)):
            y = part.selected_targets()
            if self.task == "position":
                if y.dtype.kind not in "fiu" or y.ndim != 2:
                    raise DataError(
                        f"{self.dataset}{where}: the {part_name} positions are {y.dtype} "
                        f"{y.shape}, expected numbers of shape (N, 2)"
                    )
                # Pixel coordinates; far larger ones would overflow the float32 errors.
                bad = ~(np.isfinite(y) & (np.abs(y) <= MAX_POSITION)).all(axis=1)
                if bad.any():
                    raise DataError(
                        f"{self.dataset}{where}: {int(bad.sum())} {part_name} position(s) are NaN, "
                        f"infinite or beyond ±{MAX_POSITION:g} px (first: image "
                        f"{int(part.indices[np.flatnonzero(bad)[0]])}); fix or regenerate the data"
                    )
            elif len(y) and (y.min() < 0 or y.max() >= (self.num_classes or 0)):
                raise DataError(
                    f"{self.dataset}{where}: {part_name} labels must lie in "
                    f"0..{(self.num_classes or 0) - 1}, found {int(y.min())}..{int(y.max())}"
                )
        if self.task == "classification" and len(np.unique(self.predictor.selected_targets())) < 2:
            raise DataError(
                f"{self.dataset}{where}: the predictor images hold a single class; a "
                "classification study needs at least 2 (every model and the baseline would score "
                "100%): add a second class (for a folder, a second sub-folder of images)"
            )
        for part_name, part in (("autoencoder", self.autoencoder), ("predictor", self.predictor)):
            if len(np.unique(part.selected_groups())) < 2:
                raise DataError(
                    f"{self.dataset}{where}: the {part_name} part has {len(part)} image(s) in "
                    "fewer than 2 groups (rollouts), too few to split into training and "
                    "validation; use more data"
                )
        if len(self.test) < 1:
            raise DataError(f"{self.dataset}{where}: the test part is empty; use more data")

    def check_native_size(self, image_size: int | None, root) -> "StudyData":
        """For datasets of one fixed size: refuse another asked-for size (only folder
        datasets are resized; a LunarLander collection's size is chosen when generated)."""
        if image_size is not None and self.autoencoder.image_size != image_size:
            raise DataError(
                f"{self.dataset} images in {root} are {self.autoencoder.image_size} px, not "
                f"{image_size}: --image-size resizes only folder datasets (and sets the size of a "
                "LunarLander collection when it is generated)"
            )
        return self


# Dataset name -> "module:function", each `function(root, seed=0, image_size=None) -> StudyData`
# (the one dataset interface); imported on use.
DATASETS: dict[str, str] = {
    "lunarlander": "percae.data.lunarlander:lunarlander_study_data",
    "stl10": "percae.data.stl10:stl10_study_data",
    "svhn": "percae.data.svhn:svhn_study_data",
    "folder": "percae.data.folder:folder_study_data",
}


def load_study_data(dataset: str, root, seed: int = 0, image_size: int | None = None) -> StudyData:
    """The Table I parts of a dataset by name (`lunarlander`, `stl10`, `svhn`, `folder`).

    `image_size` resizes a folder dataset's images; the other datasets have a fixed size
    (a LunarLander collection's is chosen when it is generated), which it must match."""
    import importlib

    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    module, function = DATASETS[dataset].split(":")
    return getattr(importlib.import_module(module), function)(
        root, seed=seed, image_size=image_size
    )
