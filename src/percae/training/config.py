"""A training's settings (`TrainConfig`), and which of them a resumed run may change."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import MAX_SEED, ConfigError, JsonConfig, setting
from ..device import resolve_device
from ..loss import LOSSES, ReconstructionLoss, build_loss, check_perceptual_scale
from ..stopping import early_stopping_patience


@dataclass
class TrainConfig(JsonConfig):
    # A key of loss.LOSSES; a loss of one's own passed to train_autoencoder is recorded by its name.
    loss: str = "pixel"
    # The network of the perceptual loss: NET, NET:LAYER, NET:LAYER+LAYER or torchvision:ARCH:LAYER.
    perceptual_net: str = "alexnet"
    perceptual_weights: str | None = None
    # The factor of every loss but pixel MSE: a number (1: the paper's loss), or "auto": the
    # ratio of pixel MSE to the loss between pairs of training images (ReconstructionLoss.
    # calibrate), which gives every loss the scale of pixel MSE (docs/results/perceptual-scale.md).
    perceptual_scale: float | str = "auto"
    # gamma, for variational models only: on the pixel (and calibrated) scale 1e-3 keeps every
    # latent dimension of both VAEs; the paper's 0.01 is the paper preset's.
    kl_weight: float = setting(1e-3, min=0)
    epochs: int = setting(50, min=1)
    batch_size: int = setting(512, min=2)
    lr: float = setting(1e-3, above=0)
    patience: int | None = setting(
        None, option="patience", min=1
    )  # None: max(10, epochs // 20), as the study
    seed: int = setting(0, min=0, max=MAX_SEED)
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA and on CPUs that multiply bf16 natively
    compile: bool = False  # torch.compile the training step (docs/performance.md: not a gain yet)
    # Set by training: the fingerprint of its training and validation images (ImageSet.fingerprint),
    # saved with the run, so that a run resumes only on the images it began with.
    data_fingerprint: str | None = None
    # Perceptual loss: megabytes the target images' features may keep between epochs
    # (None: a quarter of the GPU's memory on CUDA, none on a CPU, see feature_cache_bytes;
    # 0: recompute them every batch).
    feature_cache_mb: float | None = setting(None, option="feature_cache_mb", min=0)

    def validate(self) -> None:
        super().validate()
        if not self.loss:
            raise ConfigError(f"--loss needs a loss; choose one of {', '.join(LOSSES)}")
        check_perceptual_scale(self.perceptual_scale)
        resolve_device(self.device)

    @property
    def effective_patience(self) -> int:
        return early_stopping_patience(self.epochs, self.patience)

    def build_loss(self) -> ReconstructionLoss:
        """The reconstruction loss these settings name (the one source of it)."""
        return build_loss(self.loss, self.perceptual_net, self.perceptual_weights)

    def resume_differences(self, saved: dict) -> list[str]:
        """The settings of a checkpoint's run (`saved`, as to_dict) that this config changes.
        Where the run computes is free to change; what it computes is not."""
        ignored = {"device", "compile", "feature_cache_mb"}
        if saved.get("loss") == self.loss and self.loss in LOSSES:  # (one of one's own: all)
            # What the run's loss does not use.
            if not LOSSES[self.loss].uses_network:
                ignored |= {"perceptual_net", "perceptual_weights"}
            if not LOSSES[self.loss].scaled:
                ignored.add("perceptual_scale")
        mine = self.to_dict()
        return [
            k
            for k in mine
            if k not in ignored and k in saved and not _same_setting(k, saved[k], mine[k])
        ]


def _same_setting(key: str, saved, mine) -> bool:
    # A calibrated scale computed again on another machine may differ in its last bits (the
    # resumed run then keeps the saved one); other data or another network moves it far more.
    if key == "perceptual_scale" and all(isinstance(v, (int, float)) for v in (saved, mine)):
        return math.isclose(saved, mine, rel_tol=1e-3)
    return saved == mine
