"""A run's checkpoint: what it needs to continue to the bit after an interruption, and the rule
that it resumes only under the settings it began with."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import ConfigError
from ..files import atomic_write_bytes, atomic_write_text
from ..layout import RunFiles
from ..model import Autoencoder
from .config import TrainConfig


@dataclass
class TrainState:
    """What a run needs to continue to the bit after an interruption (model, optimizer, batch
    order, random state, history, best weights, patience), saved after every epoch with the
    configs it belongs to, and loaded only under the same ones."""

    model: Autoencoder
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # the batch order
    history: list[dict] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one, for early stopping
    saved_config: dict = field(default_factory=dict)  # the resumed checkpoint's training config

    @classmethod
    def start(
        cls, model: Autoencoder, config: TrainConfig, device: torch.device, freeze_encoder: bool
    ) -> "TrainState":
        params = model.decoder_parameters() if freeze_encoder else list(model.parameters())
        # Fused: one kernel for all parameters (on a CPU 7.7 instead of 13 ms a step for this
        # model).
        optimizer = torch.optim.Adam(params, lr=config.lr, fused=device.type in ("cuda", "cpu"))
        return cls(
            model,
            optimizer,
            torch.Generator().manual_seed(config.seed),
            best_state=_copy(model.state_dict()),
        )

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def record(self, row: dict) -> None:
        """Add a finished epoch; keep its weights if its validation loss is the best yet."""
        self.history.append(row)
        if row["val_loss"] < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = row["val_loss"], row["epoch"], 0
            self.best_state = _copy(self.model.state_dict())
        else:
            self.bad_epochs += 1

    def save(
        self, files: RunFiles, config: TrainConfig, freeze_encoder: bool, device: torch.device
    ) -> None:
        keys = list(self.history[0].keys())
        checkpoint = {
            "train_config": config.to_dict(),
            "model_config": self.model.config.to_dict(),
            "freeze_encoder": freeze_encoder,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_state": self.best_state,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history_keys": keys,
            "history": torch.tensor(
                [[r[k] for k in keys] for r in self.history], dtype=torch.float64
            ),
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
        }
        if device.type == "cuda":
            checkpoint["cuda_rng"] = torch.cuda.get_rng_state(device)
        # Serialised first: torch.save into the file would report a full disk as "unexpected pos".
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(files.checkpoint, lambda f: f.write(buffer.getbuffer()))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(files.history, buf.getvalue())

    def load(
        self, files: RunFiles, config: TrainConfig, freeze_encoder: bool, device: torch.device
    ) -> None:
        """Continue from the checkpoint in `files`, which must have been written under the same
        settings; the global random state (a VAE's sampling) is restored too."""
        try:
            ck = torch.load(files.checkpoint, map_location=device, weights_only=True)
            if not isinstance(ck, dict) or "model" not in ck:
                raise TypeError("not a percae checkpoint")
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets the same clear message
            raise ConfigError(
                f"{files.checkpoint} cannot be read ({type(e).__name__}); delete it to start the "
                "run over"
            ) from None
        _check_resumable(ck, files.root, config, self.model, freeze_encoder)
        self.saved_config = ck.get("train_config", {})
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        match_state_layout(self.optimizer)
        self.best_state = ck["best_state"]
        self.generator.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in ck:
            torch.cuda.set_rng_state(ck["cuda_rng"])
        self.history = [dict(zip(ck["history_keys"], row)) for row in ck["history"].tolist()]
        for row in self.history:  # the checkpoint keeps the history as float64: counts back to int
            for key in ("epoch", "active_units"):
                if key in row:
                    row[key] = int(row[key])
        self.best_val, self.best_epoch, self.bad_epochs = (
            ck["best_val"],
            int(ck["best_epoch"]),
            int(ck["bad_epochs"]),
        )


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each of the optimizer's state tensors its parameter's memory layout. A checkpoint
    keeps the layout it was saved with (channels-last or not: another device, another percae),
    and fused Adam walks a parameter's memory and its state's in the same order, so a state in
    another layout would update each weight with another weight's moments."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if (
                    isinstance(value, torch.Tensor)
                    and value.shape == param.shape
                    and value.stride() != param.stride()
                ):
                    state[key] = torch.empty_like(param).copy_(value)


def _copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state_dict.items()}


def _check_resumable(
    ck: dict, run_dir: Path, config: TrainConfig, model: Autoencoder, freeze_encoder: bool
) -> None:
    """A checkpoint resumes only the run that wrote it: other settings would silently mix two
    runs."""
    saved_data = ck.get("train_config", {}).get("data_fingerprint")
    if saved_data is not None and saved_data != config.data_fingerprint:
        raise ConfigError(
            f"{run_dir} holds an interrupted run on other images (data fingerprint {saved_data} "
            f"there, {config.data_fingerprint} now): rerun it with its data (--data), or use "
            "another --out"
        )
    changed = config.resume_differences(ck.get("train_config", {}))
    saved_model = ck.get("model_config", {})
    changed += [
        k for k, v in model.config.to_dict().items() if k in saved_model and saved_model[k] != v
    ]
    if "freeze_encoder" in ck and bool(ck["freeze_encoder"]) != freeze_encoder:
        changed.append("freeze_encoder")
    if changed:
        was = {**ck.get("train_config", {}), **saved_model}
        now = {**config.to_dict(), **model.config.to_dict()}
        raise ConfigError(
            f"{run_dir} holds an interrupted run with other settings "
            f"({', '.join(f'{k}: {was.get(k)!r} there, {now.get(k)!r} now' for k in changed)}); "
            "rerun with its settings to resume it, or use another --out"
        )
