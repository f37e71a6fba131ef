"""The paper's convolutional autoencoders (the "world models" VAE architecture):
`Autoencoder` (embedding = mean) and `VariationalAutoencoder` (reparameterised
sample in training), for square inputs of 64 + 16n pixels; saved as a folder
holding model_config.json and a state dict, reloaded strictly."""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .config import ConfigError, JsonConfig, setting
from .files import atomic_write_bytes, atomic_write_json
from .data import check_image_size
from .layout import RunFiles


# Far beyond the paper's 512: a larger z is a mistake, and its layers would not fit in memory.
MAX_LATENT = 65536


@dataclass
class AutoencoderConfig(JsonConfig):
    kind: str = "ae"  # a key of MODELS
    latent_dim: int = setting(64, option="latent size", min=1, max=MAX_LATENT)
    image_size: int = 64

    def validate(self) -> None:
        super().validate()
        if self.kind not in MODELS:
            raise ConfigError(
                f"unknown autoencoder kind {self.kind!r}; choose one of {', '.join(MODELS)}"
            )
        check_image_size(self.image_size, ConfigError)


class AutoencoderOutput(NamedTuple):
    reconstruction: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor | None


def encoder_grid(size: int) -> int:
    """The side of the encoder's last feature map for images of `size` px (2 at 64 px)."""
    for _ in range(4):
        size = (size - 4) // 2 + 1
    return size


class Autoencoder(nn.Module):
    """Encoder conv 3-32-64-128-256 (k4 s2) to mu; decoder linear + deconv 1024-128-64-32-3."""

    variational = False

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        config.validate()
        self.config = config
        z, size = config.latent_dim, config.image_size
        layers, c_in = [], 3
        for c_out in (32, 64, 128, 256):
            layers += [
                nn.Conv2d(c_in, c_out, 4, stride=2),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        flat = 256 * encoder_grid(size) ** 2
        self.mu = nn.Linear(flat, z)
        self.logvar = nn.Linear(flat, z) if self.variational else None
        self.side = (size - 64) // 16 + 1
        self.decoder_input = nn.Sequential(nn.Linear(z, 1024 * self.side**2), nn.ReLU(inplace=True))
        dec, c_in = [], 1024
        for c_out, k in ((128, 5), (64, 5), (32, 6)):
            dec += [
                nn.ConvTranspose2d(c_in, c_out, k, stride=2),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        dec += [nn.ConvTranspose2d(32, 3, 6, stride=2), nn.Sigmoid()]
        self.decoder_body = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding: the encoder's mean, deterministic for both kinds."""
        return self.mu(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_input(z).view(-1, 1024, self.side, self.side)
        return self.decoder_body(h)

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        mu = self.encode(x)
        return AutoencoderOutput(self.decode(mu), mu, None)

    def decoder_parameters(self):
        return list(self.decoder_input.parameters()) + list(self.decoder_body.parameters())


class VariationalAutoencoder(Autoencoder):
    """Samples z = mu + sigma * eps in training; in eval mode decodes mu."""

    variational = True

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return AutoencoderOutput(self.decode(z), mu, logvar)


MODELS: dict[str, type[Autoencoder]] = {"ae": Autoencoder, "vae": VariationalAutoencoder}


def build_autoencoder(config: AutoencoderConfig, seed: int | None = None) -> Autoencoder:
    """A freshly initialised autoencoder; with `seed`, the same weights in every process
    (torch's default seed differs between processes)."""
    config.validate()
    if seed is None:
        return MODELS[config.kind](config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[config.kind](config)


def save_tensors(path: str | os.PathLike, state: dict[str, torch.Tensor]) -> None:
    """A state dict as a safetensors file, written atomically."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in state.items()})
    atomic_write_bytes(path, lambda f: f.write(data))


def load_tensors(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A state dict from a safetensors file, or from a torch file read with weights_only (runs
    saved before safetensors); ConfigError naming the file when it cannot be read."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load

            return {k: v.to(map_location) for k, v in load(path.read_bytes()).items()}
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - unreadable and truncated files get one clear message
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{path} cannot be read ({type(e).__name__}: {reason[:160]}); "
            "retrain the run or restore the file"
        ) from None


def save_autoencoder(model: Autoencoder, directory: str | os.PathLike) -> None:
    """Write model_config.json and the weights (model.safetensors) into `directory`."""
    files = RunFiles(directory)
    save_tensors(files.model, model.state_dict())
    atomic_write_json(files.model_config, model.config.to_dict())
    files.legacy_model.unlink(missing_ok=True)  # (a run saved again: one weights file, the new one)


def non_finite_entries(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point weights and buffers that hold NaN or inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def load_autoencoder(
    directory: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> Autoencoder:
    """Rebuild a saved autoencoder; weights load with weights_only=True and strict=True.
    A file that cannot be read, does not fit its config, or holds NaN/inf is refused."""
    files = RunFiles(directory)
    weights = (
        files.model
        if files.model.exists() or not files.legacy_model.exists()
        else files.legacy_model
    )
    for path in (files.model_config, weights):
        if not path.exists():
            raise ConfigError(
                f"{directory} is not a trained run (missing {path.name}); train one with "
                "`percae train`"
            )
    model = build_autoencoder(AutoencoderConfig.load(files.model_config))
    state = load_tensors(weights, map_location)
    expected = model.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{weights} holds a {type(state).__name__}, not a state dict of tensors")
    problems = [
        f"lacks {', '.join(k for k in expected if k not in state)}"
        if set(expected) - set(state)
        else "",
        f"has unexpected {', '.join(k for k in state if k not in expected)}"
        if set(state) - set(expected)
        else "",
        "; ".join(
            f"{k} is {tuple(state[k].shape)}, not {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and state[k].shape != v.shape
        ),
        # (loading would cast them silently: a header edited from F32 to I32, say)
        "; ".join(
            f"{k} is {state[k].dtype}, not {v.dtype}"
            for k, v in expected.items()
            if k in state and state[k].dtype != v.dtype
        ),
    ]
    if any(problems):
        raise ConfigError(
            f"{weights} does not fit {files.model_config}: "
            f"{'; '.join(p for p in problems if p)[:400]}; retrain the run or restore the files"
        )
    model.load_state_dict(state, strict=True)
    bad = non_finite_entries(state)
    if bad:
        raise ConfigError(
            f"{weights} holds NaN or inf values in {', '.join(bad[:3])}: the training "
            "diverged; retrain it with a lower learning rate"
        )
    return model.eval()
