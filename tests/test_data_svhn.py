"""SVHN reader: tiny MATLAB v5 files in the official layout, read back as 2x2 tiles."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from scipy.io import savemat

from percae.data import DataError, load_study_data
from percae.data.svhn import download_svhn, load_svhn, svhn_study_data
from percae.device import to_float_batch

S = 32


def intended_images(n: int, seed: int) -> np.ndarray:
    """(N, H, W, 3) with a horizontal gradient and a distinct top-left pixel."""
    x = np.arange(S, dtype=np.uint8)
    imgs = np.empty((n, S, S, 3), dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            imgs[i, :, :, c] = 4 * x[None, :] + 3 * i + c
        imgs[i, 0, 0] = (250, 251, 252)
    rng = np.random.default_rng(seed)
    imgs[:, 20:25, 5:12] = rng.integers(0, 256, (n, 5, 7, 3), dtype=np.uint8)
    return imgs


def write_mat(path, imgs: np.ndarray, labels, **extra) -> None:
    # Official layout: X is H x W x 3 x N uint8, y is (N, 1) with 10 for the digit 0.
    data = {
        "X": np.asarray(imgs).transpose(1, 2, 3, 0),
        "y": np.asarray(labels, dtype=np.uint8).reshape(-1, 1),
    }
    data.update(extra)
    savemat(path, data)


LABELS = {"train": [10, 1, 2, 9, 10], "test": [3, 10, 5], "extra": [1, 2, 3, 4, 5, 6, 7, 10]}


@pytest.fixture
def svhn(tmp_path):
    parts = {}
    for seed, (split, labels) in enumerate(LABELS.items()):
        imgs = intended_images(len(labels), seed)
        write_mat(tmp_path / f"{split}_32x32.mat", imgs, labels)
        parts[split] = (imgs, np.array(labels))
    return tmp_path, parts


def test_images_and_labels(svhn):
    root, parts = svhn
    for split, (imgs, labels) in parts.items():
        s = load_svhn(root, split)
        assert s.images.dtype == np.uint8 and s.images.shape == imgs.shape
        assert s.images.flags.c_contiguous
        np.testing.assert_array_equal(s.images, imgs)
        assert s.targets.dtype == np.int64 and s.num_classes == 10
        np.testing.assert_array_equal(s.targets, np.where(labels == 10, 0, labels))
        assert s.tile == 2 and s.image_size == 64


def test_matches_torchvision(svhn, monkeypatch):
    from torchvision.datasets import SVHN

    root, _ = svhn
    monkeypatch.setattr(SVHN, "_check_integrity", lambda self: True)
    for split in LABELS:
        ours = load_svhn(root, split)
        theirs = SVHN(str(root), split=split, download=False)
        assert len(theirs) == len(ours)
        for i in range(len(theirs)):
            img, target = theirs[i]
            np.testing.assert_array_equal(np.asarray(img), ours.images[i])
            assert target == ours.targets[i]


def test_tiles_into_64(svhn):
    root, parts = svhn
    s = load_svhn(root, "train")
    batch = to_float_batch(torch.from_numpy(s.gather(np.array([3, 0]))), tile=s.tile)
    assert batch.shape == (2, 3, 64, 64)
    quadrants = [
        batch[..., :32, :32],
        batch[..., :32, 32:],
        batch[..., 32:, :32],
        batch[..., 32:, 32:],
    ]
    for q in quadrants[1:]:
        assert torch.equal(q, quadrants[0])
    expected = torch.from_numpy(parts["train"][0][[3, 0]]).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(quadrants[0], expected)


def test_study_data(svhn):
    root, _ = svhn
    for data in (svhn_study_data(root, seed=1), load_study_data("svhn", root)):
        assert data.dataset == "svhn" and data.task == "classification" and data.num_classes == 10
        assert (len(data.autoencoder), len(data.predictor), len(data.test)) == (8, 5, 3)
        np.testing.assert_array_equal(data.predictor.selected_targets(), [0, 1, 2, 9, 0])
        assert data.autoencoder.image_size == 64


def test_missing_files_listed(tmp_path):
    imgs = intended_images(2, 0)
    write_mat(tmp_path / "test_32x32.mat", imgs, [1, 2])
    with pytest.raises(DataError) as e:
        svhn_study_data(tmp_path)
    msg = str(e.value)
    assert (
        "train_32x32.mat (about 182 MB, http://ufldl.stanford.edu/housenumbers/train_32x32.mat)"
        in msg
    )
    assert (
        "extra_32x32.mat (about 1.3 GB, http://ufldl.stanford.edu/housenumbers/extra_32x32.mat)"
        in msg
    )
    assert "test_32x32.mat" not in msg
    assert "percae data svhn --root" in msg


def test_not_a_mat_file(tmp_path):
    (tmp_path / "train_32x32.mat").write_bytes(b"<html>404 not found</html>" * 10)
    with pytest.raises(DataError, match=r"train_32x32\.mat: not a readable MATLAB"):
        load_svhn(tmp_path, "train")


def test_truncated_mat_file(tmp_path):
    path = tmp_path / "train_32x32.mat"
    write_mat(path, intended_images(4, 0), [1, 2, 3, 4])
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match=r"train_32x32\.mat"):
        load_svhn(tmp_path, "train")


def test_missing_key(tmp_path):
    savemat(tmp_path / "test_32x32.mat", {"X": intended_images(2, 0).transpose(1, 2, 3, 0)})
    with pytest.raises(DataError, match=r"test_32x32\.mat: no variable\(s\) y"):
        load_svhn(tmp_path, "test")


@pytest.mark.parametrize(
    "X",
    [
        np.zeros((28, 28, 3, 2), np.uint8),
        np.zeros((32, 32, 3, 2), np.float64),
        np.zeros((2, 32, 32, 3), np.uint8),  # already N-first: not the official layout
        np.zeros((32, 32, 3), np.uint8),
    ],
)
def test_wrong_X(tmp_path, X):
    savemat(tmp_path / "test_32x32.mat", {"X": X, "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(DataError, match=r"test_32x32\.mat: X is .* expected uint8 32x32x3xN"):
        load_svhn(tmp_path, "test")


def test_label_count_mismatch(tmp_path):
    write_mat(tmp_path / "extra_32x32.mat", intended_images(3, 0), [1, 2])
    with pytest.raises(DataError, match=r"extra_32x32\.mat: y has shape \(2, 1\) for 3 images"):
        load_svhn(tmp_path, "extra")


@pytest.mark.parametrize("bad", [0, 11])
def test_labels_out_of_range(tmp_path, bad):
    write_mat(tmp_path / "train_32x32.mat", intended_images(3, 0), [1, bad, 10])
    with pytest.raises(
        DataError,
        match=rf"train_32x32\.mat: 1 label\(s\) not in 1\.\.10 \(first at position 1: {bad}\)",
    ):
        load_svhn(tmp_path, "train")


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    from torchvision.datasets import utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(
        DataError, match=r"could not download SVHN train_32x32\.mat .*ufldl.*no route to host"
    ):
        download_svhn(tmp_path / "svhn")
