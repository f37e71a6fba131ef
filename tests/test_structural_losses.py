"""The losses without a network (SSIM, MS-SSIM, the Laplacian-pyramid L1) against references
written from their definitions, the scale rule every loss shares, and every loss under bf16
autocast against float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from percae.config import ConfigError
from percae.loss import LaplacianL1Loss, MSSSIMLoss, PerceptualLoss, ReconstructionLoss, SSIMLoss
from percae.loss.structural import ms_ssim_scales
from percae.perceptual_networks import build_perceptual_network


def _frames(collection, n=16, offset=0):
    frames = np.array(collection.images[offset : offset + 8 * n : 8])
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


def _noisy(x, sigma=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def test_ssim_agrees_with_scikit_image_on_lunarlander_frames(collection):
    from skimage.metrics import structural_similarity

    frames = _frames(collection)
    for reconstruction in (_noisy(frames), _frames(collection, offset=3)):
        expected = np.mean(
            [
                structural_similarity(
                    r.permute(1, 2, 0).double().numpy(),
                    t.permute(1, 2, 0).double().numpy(),
                    data_range=1.0,
                    channel_axis=-1,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                )
                for r, t in zip(reconstruction, frames)
            ]
        )
        got = 1 - SSIMLoss()(reconstruction, frames).item()
        assert abs(got - expected) < 1e-3
        assert 0 < expected < 1


def _ms_ssim_reference(x: np.ndarray, y: np.ndarray, weights) -> float:
    """MS-SSIM from Wang, Simoncelli and Bovik (2003), per image and channel: contrast-structure
    at every scale but the last, luminance too at the last, each to its (normalised) weight;
    Gaussian window 11, sigma 1.5, borders cropped; 2 x 2 averages between scales."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = 0.01**2, 0.03**2
    weights = np.asarray(weights) / np.sum(weights)
    values = []
    for a, b in zip(x, y):  # images
        per_channel = []
        for ca, cb in zip(a, b):
            product = 1.0
            for scale, w in enumerate(weights):
                blur = lambda v: gaussian_filter(v, 1.5, truncate=3.5)[5:-5, 5:-5]  # noqa: E731
                mu_a, mu_b = blur(ca), blur(cb)
                var_a, var_b = blur(ca * ca) - mu_a**2, blur(cb * cb) - mu_b**2
                cov = blur(ca * cb) - mu_a * mu_b
                cs = ((2 * cov + c2) / (var_a + var_b + c2)).mean()
                if scale == len(weights) - 1:
                    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
                    cs = (luminance * (2 * cov + c2) / (var_a + var_b + c2)).mean()
                product *= max(cs, 0.0) ** w
                h, w_ = ca.shape
                ca = ca.reshape(h // 2, 2, w_ // 2, 2).mean(axis=(1, 3))
                cb = cb.reshape(h // 2, 2, w_ // 2, 2).mean(axis=(1, 3))
            per_channel.append(product)
        values.append(np.mean(per_channel))
    return float(np.mean(values))


def test_ms_ssim_uses_the_scales_64_px_allow_and_agrees_with_its_definition(collection):
    assert (ms_ssim_scales(64), ms_ssim_scales(96), ms_ssim_scales(176)) == (3, 4, 5)
    frames = _frames(collection, n=6)
    reconstruction = _noisy(frames, 0.03)
    expected = _ms_ssim_reference(
        reconstruction.double().numpy(), frames.double().numpy(), (0.0448, 0.2856, 0.3001)
    )
    got = 1 - MSSSIMLoss()(reconstruction, frames).item()
    assert got == pytest.approx(expected, abs=1e-4)


def test_lap1_of_an_offset_is_the_offset_and_of_equal_images_zero(collection):
    frames = _frames(collection)
    lap = LaplacianL1Loss()
    # A constant offset lies in the pyramid's low-pass level alone, whose mean |difference| it is.
    shifted = frames * 0.8 + 0.1
    assert lap(frames * 0.8 + 0.15, shifted).item() == pytest.approx(0.05, rel=1e-4)
    assert lap(frames, frames).item() == 0
    # A one-pixel detail weighs in every level: more than the pixels' own mean |difference|.
    dotted = frames.clone()
    dotted[:, :, 30, 30] = 1 - dotted[:, :, 30, 30]
    assert lap(dotted, frames).item() > (dotted - frames).abs().mean().item()


class _FourTimesMSE(ReconstructionLoss):
    def unscaled(self, reconstruction, target):
        return 4 * F.mse_loss(reconstruction.float(), target.float())


def test_every_loss_is_scaled_to_pixel_mse_between_pairs_of_training_images(collection):
    frames = _frames(collection, n=20)
    assert _FourTimesMSE("four").calibrate(frames) == pytest.approx(0.25, rel=1e-6)
    scale = SSIMLoss().calibrate(frames)
    pairs = frames.roll(10, dims=0)  # each image with the one half the sample away
    ratio = F.mse_loss(frames, pairs).item() / SSIMLoss()(frames, pairs).item()
    assert scale == pytest.approx(ratio, rel=1e-4)
    # A feature MSE's rule over every pair, in closed form: the mean over all pairs of images.
    loss = PerceptualLoss(build_perceptual_network("alexnet-random"))
    a = frames[:12]
    i, j = torch.triu_indices(12, 12, offset=1)
    pixel = F.mse_loss(a[i], a[j]).item()
    features = loss.features(a)
    feature = F.mse_loss(features[i], features[j]).item()
    assert loss.calibrate(a) == pytest.approx(pixel / feature, rel=1e-4)


def test_a_loss_that_does_not_vary_over_the_images_cannot_be_calibrated():
    with pytest.raises(ConfigError, match="set the scale to a number"):
        SSIMLoss().calibrate(torch.full((4, 3, 64, 64), 0.5))


def _loss_and_gradient(loss, reconstruction, target, bf16: bool):
    r = reconstruction.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        value = loss(r, target)
    value.backward()
    return value.item(), r.grad.flatten()


FAST = ["ssim", "ms-ssim", "lap1", "alexnet-random:relu1+relu2+relu3"]
SLOW = [
    *(f"alexnet-random:relu{i}" for i in (1, 3, 4, 5)),
    *(f"efficientnet-lite0:stage{i}" for i in (1, 2, 3, 4, 5, 6)),
    "efficientnet-lite1:stage3",
    "efficientnet-lite2:stage3",
]


def _loss(name):
    return {"ssim": SSIMLoss, "ms-ssim": MSSSIMLoss, "lap1": LaplacianL1Loss}.get(
        name, lambda: PerceptualLoss(build_perceptual_network(name), name=name, cpu_chunk=None)
    )()


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW])
def test_every_loss_and_its_gradient_under_bf16_autocast_are_the_float32_ones(name, collection):
    """As for the paper's perceptual loss: a reconstruction as good as a trained autoencoder's
    and frames of another moment, against the frames."""
    frames = _frames(collection, n=16)
    loss = _loss(name)
    for reconstruction in (_noisy(frames, 0.01), _frames(collection, n=16, offset=5)):
        exact, exact_grad = _loss_and_gradient(loss, reconstruction, frames, bf16=False)
        fast, fast_grad = _loss_and_gradient(loss, reconstruction, frames, bf16=True)
        assert exact > 0
        assert fast == pytest.approx(exact, rel=0.01)
        assert _cosine(fast_grad, exact_grad) >= 0.99


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """In float64 and without torch's floor on the norms (1e-8, which a deep layer's tiny
    gradients fall under)."""
    a, b = a.double(), b.double()
    return (a @ b / (a.norm() * b.norm())).item()


def test_a_loss_whose_library_is_missing_is_one_line_naming_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "piq", None)
    with pytest.raises(ConfigError, match=r"pip install 'percae\[losses\]'"):
        SSIMLoss()
    monkeypatch.setitem(sys.modules, "kornia", None)
    monkeypatch.setitem(sys.modules, "kornia.geometry", None)
    monkeypatch.setitem(sys.modules, "kornia.geometry.transform", None)
    with pytest.raises(ConfigError, match=r"pip install 'percae\[losses\]'"):
        LaplacianL1Loss()
