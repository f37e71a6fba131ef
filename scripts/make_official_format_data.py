"""Write STL-10 and SVHN files in their exact official formats, with a task that can be
learned (the class sets the colour of a large square at a random place on a noisy
background), for trying the STL-10 and SVHN studies where the real files are not at hand.

    python scripts/make_official_format_data.py stl10 DIR --unlabeled 20000
    python scripts/make_official_format_data.py svhn DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 190],
    ],
    np.uint8,
)


def images_for(labels: np.ndarray, size: int, rng: np.random.Generator, chunk: int = 2000):
    """Yield (H, W, 3) uint8 images in chunks: noise plus a class-coloured square."""
    side = size // 3
    for start in range(0, len(labels), chunk):
        lab = labels[start : start + chunk]
        x = rng.integers(0, 120, size=(len(lab), size, size, 3), dtype=np.uint8)
        ys, xs = rng.integers(0, size - side, size=(2, len(lab)))
        for k, (c, y0, x0) in enumerate(zip(lab, ys, xs)):
            x[k, y0 : y0 + side, x0 : x0 + side] = PALETTE[c]
        yield x


def write_stl10(root: Path, n_unlabeled: int, n_train: int, n_test: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = root / "stl10_binary"
    d.mkdir(parents=True, exist_ok=True)
    for name, n, labelled in (
        ("unlabeled", n_unlabeled, False),
        ("train", n_train, True),
        ("test", n_test, True),
    ):
        labels = rng.integers(0, 10, size=n)
        with open(d / f"{name}_X.bin", "wb") as f:
            for batch in images_for(labels, 96, rng):
                # Official layout: per image, channel-major, each channel stored column-major.
                batch.transpose(0, 3, 2, 1).tofile(f)
        if labelled:
            (labels + 1).astype(np.uint8).tofile(d / f"{name}_y.bin")


def write_svhn(root: Path, n_extra: int, n_train: int, n_test: int, seed: int) -> None:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("extra", n_extra), ("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, size=n)
        x = np.concatenate(list(images_for(labels, 32, rng)))
        savemat(
            root / f"{name}_32x32.mat",
            {
                "X": x.transpose(1, 2, 3, 0),
                "y": np.where(labels == 0, 10, labels)[:, None].astype(np.uint8),
            },
        )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("dataset", choices=["stl10", "svhn"])
    p.add_argument("root", type=Path)
    p.add_argument(
        "--unlabeled", type=int, default=20000, help="STL-10 unlabeled / SVHN extra images"
    )
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.dataset == "stl10":
        write_stl10(a.root, a.unlabeled, a.train, a.test, a.seed)
    else:
        write_svhn(a.root, a.unlabeled, a.train, a.test, a.seed)
    print(f"wrote {a.dataset} files in the official format to {a.root}")


if __name__ == "__main__":
    main()
