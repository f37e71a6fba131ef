"""SVHN cropped digits from the official MATLAB files, as the three parts of Table I.

Layout (torchvision's): ROOT/{train_32x32.mat, test_32x32.mat, extra_32x32.mat}, each with
`X` uint8 32 x 32 x 3 x N and `y` (N, 1) with labels 1..10, 10 meaning the digit 0.
The 32-pixel images are shown to the 64 + 16n-pixel autoencoders as a 2 x 2 tile.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import DataError, ImageSet, StudyData, require_files

SIDE = 32
NUM_CLASSES = 10
TILE = 2
BASE_URL = "http://ufldl.stanford.edu/housenumbers"
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
APPROX_SIZES = {"train": "182 MB", "test": "64 MB", "extra": "1.3 GB"}


def _check_present(root: Path, splits) -> None:
    require_files(
        "SVHN",
        root,
        {FILES[s]: f"about {APPROX_SIZES[s]}, {BASE_URL}/{FILES[s]}" for s in splits},
        f"Download them into {root}, or run `percae data svhn --root {root}` with internet",
    )


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(path, variable_names=("X", "y"))
    except Exception as e:  # scipy raises many types for foreign, truncated or v7.3 (HDF5) files
        raise DataError(
            f"{path.name}: not a readable MATLAB v5 .mat file ({type(e).__name__}: {e}) in {path}; "
            f"download it again from {BASE_URL}/{path.name}"
        ) from None
    missing = [k for k in ("X", "y") if k not in mat]
    if missing:
        from scipy.io import whosmat

        # loadmat read only X and y: list what the file holds instead.
        found = [name for name, _, _ in whosmat(path)]
        raise DataError(
            f"{path.name}: no variable(s) {', '.join(missing)} in {path} (found: "
            f"{', '.join(found) or 'none'}); not an SVHN cropped-digits file"
        )
    return mat["X"], mat["y"]


def load_svhn(root: str | os.PathLike, split: str) -> ImageSet:
    """One SVHN file ('train', 'test' or 'extra') as uint8 (N, 32, 32, 3), shown as 64 x 64
    tiles."""
    if split not in FILES:
        raise DataError(f"unknown SVHN split {split!r}; choose one of {', '.join(FILES)}")
    root = Path(root)
    _check_present(root, [split])
    path = root / FILES[split]
    X, y = _read_mat(path)
    if X.ndim != 4 or X.shape[:3] != (SIDE, SIDE, 3) or X.dtype != np.uint8 or X.shape[3] == 0:
        raise DataError(
            f"{path.name}: X is {X.dtype} {tuple(X.shape)}, expected uint8 {SIDE}x{SIDE}x3xN with "
            f"N > 0, in {path}"
        )
    n = X.shape[3]
    if y.size != n or (y.ndim == 2 and 1 not in y.shape) or y.ndim > 2:
        raise DataError(
            f"{path.name}: y has shape {tuple(y.shape)} for {n} images (X), expected ({n}, 1), in "
            f"{path}"
        )
    y = y.reshape(-1)
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{path.name}: y is {y.dtype}, expected numeric labels 1..10, in {path}")
    bad = (y < 1) | (y > NUM_CLASSES) | (y != np.round(y))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path.name}: {int(bad.sum())} label(s) not in 1..{NUM_CLASSES} "
            f"(first at position {first}: {float(y[first]):g}) in {path}"
        )
    labels = y.astype(np.int64)
    labels[labels == 10] = 0
    # One contiguous uint8 copy in (N, H, W, 3); X's own buffer is freed when it goes out of scope.
    images = np.ascontiguousarray(X.transpose(3, 0, 1, 2))
    return ImageSet(
        images, targets=labels, tile=TILE, num_classes=NUM_CLASSES, name=f"svhn {split}"
    )


def svhn_study_data(
    root: str | os.PathLike, seed: int = 0, image_size: int | None = None
) -> StudyData:
    """Table I for SVHN: autoencoders on `extra`, predictors on `train`, test on `test`.

    The parts are fixed by the release, so `seed` does not change them.
    """
    root = Path(root)
    _check_present(root, list(FILES))
    return StudyData(
        dataset="svhn",
        task="classification",
        autoencoder=load_svhn(root, "extra"),
        predictor=load_svhn(root, "train"),
        test=load_svhn(root, "test"),
        num_classes=NUM_CLASSES,
        notes=[
            f"SVHN's {SIDE}x{SIDE} digits are shown as {TILE}x{TILE} tiles of "
            f"{SIDE * TILE}x{SIDE * TILE} pixels"
        ],
    ).check_native_size(image_size, root)


def download_svhn(root: str | os.PathLike) -> Path:
    """Download and MD5-check the three SVHN files into ROOT.

    This is torchvision.datasets.SVHN's own download (its URLs, MD5 sums and
    `download_url`), without SVHN's loading of each 1.3 GB file into memory afterwards.
    Files already present and intact are not fetched again.
    """
    from torchvision.datasets import SVHN
    from torchvision.datasets import utils as tv_utils

    root = Path(root)
    for split in FILES:
        url, filename, md5 = SVHN.split_list[split]
        try:
            root.mkdir(parents=True, exist_ok=True)
            tv_utils.download_url(url, str(root), filename, md5)
        except Exception as e:  # network and disk errors all mean the same to the user
            raise DataError(
                f"could not download SVHN {filename} (about {APPROX_SIZES[split]}) from {url} into "
                f"{root} ({type(e).__name__}: {e}); check the internet connection and free disk "
                f"space, or download it by hand into {root}"
            ) from e
        if not tv_utils.check_integrity(str(root / filename), md5):
            raise DataError(
                f"SVHN {filename} in {root} fails its MD5 check; delete it and download again"
            )
    return root
