"""STL-10 reader: tiny files in the official binary format, read back memory-mapped."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest

from percae.data import DataError, load_study_data
from percae.data.stl10 import IMAGE_BYTES, download_stl10, load_stl10, stl10_study_data

S = 96


def intended_images(n: int, seed: int) -> np.ndarray:
    """(N, H, W, 3) images whose orientation errors show: a horizontal gradient, a
    distinct top-left pixel and a different value per channel and image."""
    x = np.arange(S, dtype=np.uint8)
    imgs = np.empty((n, S, S, 3), dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            imgs[i, :, :, c] = (x[None, :] + 7 * i + 50 * c) % 200
        imgs[i, 0, 0] = (250, 251, 252)
        imgs[i, S - 1, 3] = (253, 254, 255)  # bottom row, near the left edge
    rng = np.random.default_rng(seed)
    imgs[:, 10:20, 30:40] = rng.integers(0, 256, (n, 10, 10, 3), dtype=np.uint8)
    return imgs


def write_images(path, imgs: np.ndarray) -> None:
    # The official layout: per image and channel, column-major (x outer, y inner).
    np.ascontiguousarray(imgs.transpose(0, 3, 2, 1)).tofile(path)


def write_labels(path, labels) -> None:
    np.asarray(labels, dtype=np.uint8).tofile(path)


@pytest.fixture
def stl(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    parts = {
        "unlabeled": (intended_images(6, 0), None),
        "train": (intended_images(4, 1), np.array([1, 2, 10, 5])),
        "test": (intended_images(3, 2), np.array([10, 1, 3])),
    }
    write_images(folder / "unlabeled_X.bin", parts["unlabeled"][0])
    for split in ("train", "test"):
        write_images(folder / f"{split}_X.bin", parts[split][0])
        write_labels(folder / f"{split}_y.bin", parts[split][1])
    return tmp_path, parts


def test_pixels_by_byte_offset(tmp_path):
    """Bytes placed by the documented offsets land at the right (y, x, channel)."""
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    raw = np.zeros(IMAGE_BYTES, dtype=np.uint8)
    # channel c, column x, row y -> byte c*96*96 + x*96 + y
    raw[0 * S * S + 5 * S + 2] = 11  # red at y=2, x=5
    raw[1 * S * S + 0 * S + 9] = 22  # green at y=9, x=0
    raw[2 * S * S + 95 * S + 95] = 33  # blue at the bottom-right corner
    raw.tofile(folder / "unlabeled_X.bin")
    img = load_stl10(tmp_path, "unlabeled").materialize()[0]
    assert img[2, 5, 0] == 11 and img[9, 0, 1] == 22 and img[95, 95, 2] == 33
    assert int(img.astype(int).sum()) == 11 + 22 + 33


def test_images_and_labels(stl):
    root, parts = stl
    for split, (imgs, labels) in parts.items():
        s = load_stl10(root, split)
        assert s.images.shape == imgs.shape and s.images.dtype == np.uint8
        np.testing.assert_array_equal(s.materialize(), imgs)
        np.testing.assert_array_equal(s.gather(np.array([2, 0, 1])), imgs[[2, 0, 1]])
        assert s.image_size == 96 and s.tile == 1
        if labels is None:
            assert s.targets is None
        else:
            assert s.targets.dtype == np.int64 and s.num_classes == 10
            np.testing.assert_array_equal(s.targets, labels - 1)


def test_memory_mapped_without_copy(stl):
    root, _ = stl
    s = load_stl10(root, "train")
    assert isinstance(s.images, np.memmap)
    assert s.images.filename is not None and str(s.images.filename).endswith("train_X.bin")
    assert not s.images.flags.owndata and not s.images.flags.writeable


def test_matches_torchvision(stl, monkeypatch):
    from torchvision.datasets import STL10

    root, parts = stl
    # The tiny files cannot match the official MD5 sums; the reading is what is compared.
    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)
    for split in ("train", "test", "unlabeled"):
        ours = load_stl10(root, split)
        theirs = STL10(str(root), split=split, download=False)
        assert len(theirs) == len(ours)
        images = ours.materialize()
        for i in range(len(theirs)):
            img, target = theirs[i]
            np.testing.assert_array_equal(np.asarray(img), images[i])
            if ours.targets is not None:
                assert target == ours.targets[i]


def test_study_data(stl):
    root, parts = stl
    for data in (stl10_study_data(root, seed=3), load_study_data("stl10", root, seed=0)):
        assert data.dataset == "stl10" and data.task == "classification" and data.num_classes == 10
        assert (len(data.autoencoder), len(data.predictor), len(data.test)) == (6, 4, 3)
        assert data.autoencoder.targets is None
        np.testing.assert_array_equal(data.predictor.selected_targets(), [0, 1, 9, 4])
        np.testing.assert_array_equal(data.test.selected_targets(), [9, 0, 2])
        assert any("official release" in note for note in data.notes)


def test_binary_folder_given_directly(stl):
    root, parts = stl
    np.testing.assert_array_equal(
        load_stl10(root / "stl10_binary", "test").materialize(), parts["test"][0]
    )


def test_truncated_images_refused(stl):
    root, _ = stl
    path = root / "stl10_binary" / "train_X.bin"
    path.write_bytes(path.read_bytes()[: IMAGE_BYTES + 1])
    with pytest.raises(
        DataError, match=r"train_X\.bin: 27649 bytes is not a whole number.*truncated"
    ):
        load_stl10(root, "train")


def test_empty_images_refused(stl):
    root, _ = stl
    (root / "stl10_binary" / "test_X.bin").write_bytes(b"")
    with pytest.raises(DataError, match=r"test_X\.bin.*empty"):
        stl10_study_data(root)


def test_label_count_mismatch_refused(stl):
    root, _ = stl
    write_labels(root / "stl10_binary" / "train_y.bin", [1, 2, 3])
    with pytest.raises(DataError, match=r"train_y\.bin: 3 labels for the 4 images"):
        load_stl10(root, "train")


@pytest.mark.parametrize("bad", [0, 11])
def test_labels_out_of_range_refused(stl, bad):
    root, _ = stl
    write_labels(root / "stl10_binary" / "test_y.bin", [1, bad, 3])
    with pytest.raises(
        DataError,
        match=rf"test_y\.bin: 1 label\(s\) outside 1\.\.10 \(first at position 1: {bad}\)",
    ):
        load_stl10(root, "test")


def test_missing_files_listed(stl):
    root, _ = stl
    (root / "stl10_binary" / "unlabeled_X.bin").unlink()
    (root / "stl10_binary" / "test_y.bin").unlink()
    with pytest.raises(DataError) as e:
        stl10_study_data(root)
    msg = str(e.value)
    assert "unlabeled_X.bin (2,764,800,000 bytes)" in msg and "test_y.bin (8,000 bytes)" in msg
    assert "train_X.bin" not in msg
    assert "https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz" in msg
    assert "percae data stl10 --root" in msg


def test_nothing_there(tmp_path):
    with pytest.raises(DataError, match="missing unlabeled_X.bin"):
        stl10_study_data(tmp_path)


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    from torchvision.datasets import utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(
        DataError, match=r"could not download STL-10 from .*stl10_binary\.tar\.gz.*no route to host"
    ):
        download_stl10(tmp_path / "data")
