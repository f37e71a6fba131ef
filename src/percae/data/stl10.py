"""STL-10 from its official binary release, memory-mapped, as the three parts of Table I.

Layout (torchvision's): ROOT/stl10_binary/{unlabeled_X.bin, train_X.bin, train_y.bin,
test_X.bin, test_y.bin}. Each image is 3 x 96 x 96 uint8, every channel stored
column-major (x outer, y inner), exactly as torchvision.datasets.STL10 reads it;
labels are uint8 1..10.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import DataError, ImageSet, StudyData, require_files

SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE
NUM_CLASSES = 10
FOLDER = "stl10_binary"
URL = "https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"

# Image counts of the official release; only used for the missing-file message and a note.
OFFICIAL_COUNTS = {"unlabeled": 100_000, "train": 5_000, "test": 8_000}
SPLIT_FILES = {
    "unlabeled": ("unlabeled_X.bin", None),
    "train": ("train_X.bin", "train_y.bin"),
    "test": ("test_X.bin", "test_y.bin"),
}


def _expected_sizes() -> dict[str, int]:
    sizes = {}
    for split, (images, labels) in SPLIT_FILES.items():
        sizes[images] = OFFICIAL_COUNTS[split] * IMAGE_BYTES
        if labels:
            sizes[labels] = OFFICIAL_COUNTS[split]
    return sizes


def stl10_folder(root: str | os.PathLike) -> Path:
    """ROOT/stl10_binary, or ROOT itself where the .bin files lie directly in it."""
    root = Path(root)
    if not (root / FOLDER).is_dir() and (root / "train_X.bin").exists():
        return root
    return root / FOLDER


def _check_present(folder: Path, names: list[str]) -> None:
    sizes = _expected_sizes()
    require_files(
        "STL-10",
        folder,
        {n: f"{sizes[n]:,} bytes" for n in names},
        f"Download {URL} (about 2.6 GB) and extract it into {folder.parent} (tar xzf "
        f"stl10_binary.tar.gz), or run `percae data stl10 --root {folder.parent}` with internet",
    )


def _images(path: Path) -> np.ndarray:
    """(N, 96, 96, 3) uint8 view of a memory map of `path`: nothing is read until used."""
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path.name}: the file is empty ({path}); download STL-10 again")
    if size % IMAGE_BYTES:
        raise DataError(
            f"{path.name}: {size} bytes is not a whole number of {SIDE}x{SIDE}x3 images "
            f"({IMAGE_BYTES} bytes each; truncated?) in {path}; download STL-10 again"
        )
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // IMAGE_BYTES, 3, SIDE, SIDE))
    # The file's axes are (N, C, x, y); reordering them to (N, y, x, C) is a view, not a copy.
    return raw.transpose(0, 3, 2, 1)


def _labels(path: Path, count: int, images_name: str) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8)
    if len(raw) != count:
        raise DataError(
            f"{path.name}: {len(raw)} labels for the {count} images of {images_name} in "
            f"{path.parent}; the two files come from different downloads or one is truncated"
        )
    bad = (raw < 1) | (raw > NUM_CLASSES)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path.name}: {int(bad.sum())} label(s) outside 1..{NUM_CLASSES} "
            f"(first at position {first}: {int(raw[first])}) in {path}"
        )
    return raw.astype(np.int64) - 1


def load_stl10(root: str | os.PathLike, split: str) -> ImageSet:
    """One part of STL-10 ('unlabeled', 'train' or 'test'); images memory-mapped."""
    if split not in SPLIT_FILES:
        raise DataError(f"unknown STL-10 split {split!r}; choose one of {', '.join(SPLIT_FILES)}")
    folder = stl10_folder(root)
    images_name, labels_name = SPLIT_FILES[split]
    _check_present(folder, [images_name] + ([labels_name] if labels_name else []))
    images = _images(folder / images_name)
    if labels_name is None:
        return ImageSet(images, name=f"stl10 {split}")
    targets = _labels(folder / labels_name, len(images), images_name)
    return ImageSet(images, targets=targets, num_classes=NUM_CLASSES, name=f"stl10 {split}")


def stl10_study_data(
    root: str | os.PathLike, seed: int = 0, image_size: int | None = None
) -> StudyData:
    """Table I for STL-10: autoencoders on `unlabeled`, predictors on `train`, test on `test`.

    The parts are fixed by the release, so `seed` does not change them.
    """
    folder = stl10_folder(root)
    _check_present(folder, list(_expected_sizes()))
    parts = {split: load_stl10(root, split) for split in SPLIT_FILES}
    notes = [
        f"STL-10 {split} has {len(parts[split])} images, the official release "
        f"{OFFICIAL_COUNTS[split]}"
        for split in SPLIT_FILES
        if len(parts[split]) != OFFICIAL_COUNTS[split]
    ]
    return StudyData(
        dataset="stl10",
        task="classification",
        autoencoder=parts["unlabeled"],
        predictor=parts["train"],
        test=parts["test"],
        num_classes=NUM_CLASSES,
        notes=notes,
    ).check_native_size(image_size, root)


def download_stl10(root: str | os.PathLike) -> Path:
    """Download, checksum and extract the official archive into ROOT/stl10_binary.

    torchvision's helpers do the work, with its URL and MD5 sums; files already present
    and intact are not fetched again, and an archive already in ROOT is used as is.
    """
    from torchvision.datasets import STL10
    from torchvision.datasets import utils as tv_utils

    root = Path(root)
    folder = root / STL10.base_folder
    files = STL10.train_list + STL10.test_list

    def corrupt() -> list[str]:
        return [
            name for name, md5 in files if not tv_utils.check_integrity(str(folder / name), md5)
        ]

    if corrupt():
        try:
            root.mkdir(parents=True, exist_ok=True)
            tv_utils.download_and_extract_archive(
                STL10.url, str(root), filename=STL10.filename, md5=STL10.tgz_md5
            )
        except Exception as e:  # network, disk and archive errors all mean the same to the user
            raise DataError(
                f"could not download STL-10 from {STL10.url} into {root} ({type(e).__name__}: "
                f"{e}); check the internet connection and free disk space (about 5.3 GB), or "
                f"download {URL} by hand and extract it into {root}"
            ) from e
        bad = corrupt()
        if bad:
            raise DataError(
                f"STL-10 in {folder}: {', '.join(bad)} fail(s) the MD5 check after extraction; "
                f"delete {root / STL10.filename} and {folder} and download again"
            )
    for split in SPLIT_FILES:
        load_stl10(root, split)
    return folder
