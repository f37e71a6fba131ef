"""What an epoch is made of: the objective of one batch, a shuffled pass of training steps, the
validation loss, a VAE's latent diagnostics, and the loss's scale calibrated before training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..data import ImageSet, to_float_batch
from ..device import DeviceImages, autocast
from ..feature_cache import FeatureCache
from ..loss import AUTO_SCALE, CALIBRATION_IMAGES, ReconstructionLoss, kl_divergence
from ..model import Autoencoder
from .config import TrainConfig
from .records import ACTIVE_UNIT_VARIANCE
from .state import TrainState


def objective(
    model: Autoencoder,
    loss_fn: ReconstructionLoss,
    x: torch.Tensor,
    kl_weight: float,
    freeze_encoder: bool = False,
    target_features=None,
):
    """The training loss of one batch; `target_features` (a loss that keeps its targets') are
    the loss's `target_features(x)` if they were computed before."""

    def reconstruction_loss(reconstruction):
        if target_features is None:
            return loss_fn(reconstruction, x)
        return loss_fn(reconstruction, x, target_features)

    if freeze_encoder:
        # Decoder retraining: reconstruct from the fixed embedding (mu), nothing else moves.
        with torch.no_grad():
            mu = model.encode(x)
        return reconstruction_loss(model.decode(mu))
    out = model(x)
    loss = reconstruction_loss(out.reconstruction)
    if out.logvar is not None:
        loss = loss + kl_weight * kl_divergence(out.mu.float(), out.logvar.float())
    return loss


@dataclass
class Objective:
    """The objective of a run: its model, loss, KL weight (0 but for a VAE's own training) and
    whether the encoder is frozen; compiled where the settings ask for it (CUDA only)."""

    model: Autoencoder
    loss_fn: ReconstructionLoss
    kl_weight: float
    freeze_encoder: bool
    step: Callable = objective

    def __call__(self, x: torch.Tensor, target_features=None) -> torch.Tensor:
        return self.step(
            self.model, self.loss_fn, x, self.kl_weight, self.freeze_encoder, target_features
        )


def train_pass(
    objective: Objective,
    data: DeviceImages,
    state: TrainState,
    config: TrainConfig,
    cache: FeatureCache | None,
    bar,
) -> tuple[float, int, int | None]:
    """One shuffled pass of training steps: (mean loss, images, the first step whose loss was
    not finite or None). No step waits on the host: the losses are summed, and the steps
    before the first non-finite one counted, on the device."""
    device = data.device
    order = torch.randperm(data.n, generator=state.generator)
    if data.n % config.batch_size == 1:
        order = order[:-1]  # BatchNorm cannot train on a batch of one
    total = torch.zeros((), device=device)
    finite_so_far = torch.ones((), dtype=torch.bool, device=device)
    good_steps = torch.zeros((), dtype=torch.long, device=device)
    for positions, x in data.indexed_batches(config.batch_size, order):
        with autocast(device, config.amp):
            features = cache.features(positions) if cache is not None else None
            loss = objective(x, features)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        total += loss.detach().float() * len(x)
        finite_so_far &= torch.isfinite(loss.detach())
        good_steps += finite_so_far
        bar.update(len(x))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    bad_step = None if bool(finite_so_far) else int(good_steps) + 1
    return total.item() / len(order), len(order), bad_step


@torch.no_grad()
def evaluate_loss(
    objective: Objective,
    data: DeviceImages,
    batch_size: int,
    amp: bool = True,
    cache: FeatureCache | None = None,
) -> float:
    """Mean objective over a set, in eval mode and without autograd."""
    objective.model.eval()
    total = torch.zeros((), device=data.device)
    for positions, x in data.indexed_batches(batch_size):
        with autocast(data.device, amp):
            features = cache.features(positions) if cache is not None else None
            total += objective(x, features).float() * len(x)
    return total.item() / data.n


@torch.no_grad()
def latent_diagnostics(
    model, loss_fn, data: DeviceImages, batch_size: int, amp: bool = True
) -> dict:
    """A VAE's validation terms, to tell posterior collapse from learning: the reconstruction
    loss (decoding mu), the KL term as the objective weighs it (gamma not applied), the mean KL
    per latent dimension in nats, and the active units: dimensions whose mean (mu) has a
    variance over the set above ACTIVE_UNIT_VARIANCE."""
    model.eval()
    reconstruction = torch.zeros((), device=data.device)
    kl = torch.zeros(model.config.latent_dim, device=data.device)
    means = []
    for x in data.batches(batch_size):
        with autocast(data.device, amp):
            out = model(x)
            reconstruction += loss_fn(out.reconstruction, x).float() * len(x)
        mu, logvar = out.mu.float(), out.logvar.float()
        kl += (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(0)
        means.append(mu)
    kl_per_dim = kl / data.n
    active = torch.cat(means).var(0, correction=0) > ACTIVE_UNIT_VARIANCE
    return {
        "val_reconstruction": reconstruction.item() / data.n,
        "val_kl_term": 2 * kl_per_dim.mean().item(),  # = kl_divergence(mu, logvar) over the set
        "val_kl_per_dim": kl_per_dim.mean().item(),
        "active_units": int(active.sum()),
    }


def resolve_perceptual_scale(
    config: TrainConfig, loss_fn: ReconstructionLoss, images: ImageSet, device: torch.device
) -> float:
    """The scale a run's loss uses: the config's number, or for "auto" the calibration on a
    fixed, evenly spaced sample of the training images (the same for every seed)."""
    if config.perceptual_scale != AUTO_SCALE:
        return float(config.perceptual_scale)
    count = min(len(images), CALIBRATION_IMAGES)
    positions = np.unique(np.linspace(0, len(images) - 1, count).round().astype(np.int64))
    sample = to_float_batch(torch.from_numpy(images.gather(positions)), images.tile).to(device)
    return loss_fn.calibrate(sample)
