"""Embeddings and reconstructions of an image set, against the model applied by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from percae.config import ConfigError
from percae.embeddings import cached_embeddings, encode_images, reconstruct, reconstruction_l1
from percae.model import AutoencoderConfig, build_autoencoder


def make(kind="vae", z=5):
    torch.manual_seed(0)
    model = build_autoencoder(AutoencoderConfig(kind=kind, latent_dim=z, image_size=64))
    # Non-default BatchNorm statistics: the embedding must use them (eval mode).
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def by_hand(images_uint8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture
def shuffled(tiny_images):
    return tiny_images.subset(np.random.default_rng(0).permutation(len(tiny_images))[:23])


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_encode_images_is_the_models_mean_in_order(kind, shuffled):
    model = make(kind)
    z = encode_images(model, shuffled, batch_size=7, device="cpu")
    assert z.shape == (23, 5) and z.dtype == np.float32
    model.eval()
    x = by_hand(shuffled.images[shuffled.indices])
    with torch.no_grad():
        expected = model.encode(x).numpy()
        mu_forward = model(x).mu.numpy()
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(z, mu_forward, rtol=1e-4, atol=1e-7)
    # Encoding again gives the same numbers (no sampling, no training-mode statistics).
    np.testing.assert_array_equal(encode_images(model, shuffled, batch_size=7, device="cpu"), z)


def test_encode_images_leaves_the_model_in_eval_mode(shuffled):
    model = make().train()
    encode_images(model, shuffled, device="cpu")
    assert not model.training


def test_reconstruction_l1_is_the_mean_absolute_error(shuffled):
    model = make()
    value = reconstruction_l1(model, shuffled, batch_size=5, device="cpu")
    model.eval()
    x = by_hand(shuffled.images[shuffled.indices])
    with torch.no_grad():
        rec = model.decode(model.encode(x))
    manual = np.mean(np.abs(rec.double().numpy() - x.double().numpy()))
    assert value == pytest.approx(manual, rel=1e-5)
    assert 0 < value < 1


def test_reconstruct_returns_uint8_images(shuffled):
    model = make()
    positions = np.array([3, 0, 10])
    out = reconstruct(model, shuffled, positions, device="cpu")
    assert out.shape == (3, 64, 64, 3) and out.dtype == np.uint8
    x = by_hand(shuffled.images[shuffled.indices[positions]])
    with torch.no_grad():
        rec = model.decode(model.encode(x)).permute(0, 2, 3, 1).numpy()
    assert np.abs(out.astype(np.float64) - rec * 255).max() <= 0.51


def test_cached_embeddings_are_computed_once(shuffled, tmp_path):
    path = tmp_path / "z.npy"
    first = cached_embeddings(path, make(z=5), shuffled, device="cpu")
    assert path.exists()
    # Another model would give other numbers; the cache answers with the saved ones.
    torch.manual_seed(42)
    other = build_autoencoder(AutoencoderConfig(kind="ae", latent_dim=5, image_size=64))
    np.testing.assert_array_equal(cached_embeddings(path, other, shuffled, device="cpu"), first)
    assert not np.allclose(encode_images(other, shuffled, device="cpu"), first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.npy"]


def test_images_of_ones_own_encode_as_the_image_set_does(tiny_images):
    """uint8 (N, S, S, 3) as percae stores them, float (N, 3, S, S) as PyTorch holds them, or
    an ImageSet: the same embeddings."""
    from percae.embeddings import encode_images

    model = build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0)
    expected = encode_images(model, tiny_images, batch_size=16, device="cpu")
    pixels = tiny_images.materialize()
    as_floats = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    big_endian = as_floats.numpy().astype(
        ">f4"
    )  # as a .npy written on another machine may hold them
    for images in (pixels, torch.from_numpy(pixels), as_floats, as_floats.numpy(), big_endian):
        np.testing.assert_array_equal(
            encode_images(model, images, batch_size=16, device="cpu"), expected
        )
    # Floats on the 0-255 scale are not images in [0, 1]: refused, naming the values found.
    for scaled in (as_floats * 255, as_floats.numpy() - 0.5):
        with pytest.raises(ConfigError, match=r"float images must be in \[0, 1\]"):
            encode_images(model, scaled, batch_size=16, device="cpu")


def test_an_image_set_is_a_dataset_for_a_dataloader(tiny_images):
    from torch.utils.data import DataLoader

    images, targets = next(iter(DataLoader(tiny_images, batch_size=8, shuffle=False)))
    assert images.shape == (8, 3, 64, 64) and images.dtype == torch.float32
    assert torch.equal(
        images, torch.from_numpy(tiny_images.materialize()[:8]).permute(0, 3, 1, 2).float() / 255
    )
    assert torch.equal(
        targets, torch.from_numpy(tiny_images.selected_targets()[:8].astype(np.float32))
    )
    with pytest.raises(IndexError):
        tiny_images[len(tiny_images)]


@pytest.mark.parametrize(
    "damage",
    ["truncated", "nan", "wrong shape", "object array"],
)
def test_a_damaged_saved_embedding_is_computed_again(tiny_images, tmp_path, damage):
    model = build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0)
    path = tmp_path / "embeddings_test.npy"
    good = cached_embeddings(path, model, tiny_images, device="cpu")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "nan":
        np.save(path, np.full_like(good, np.nan))
    elif damage == "wrong shape":
        np.save(path, good[:, :2].copy())
    else:
        np.save(path, np.array([None] * len(good), dtype=object), allow_pickle=True)
    np.testing.assert_array_equal(cached_embeddings(path, model, tiny_images, device="cpu"), good)
    np.testing.assert_array_equal(np.load(path), good)  # and saved whole again
