"""What a GPU step is made of, counted on any machine: arithmetic (FLOPs) and PyTorch
operations (about one kernel launch each) per training step of the autoencoder (AE, z=32,
64x64, batch 512, fused Adam) and of the predictor grid (38 predictors, batch 512).
docs/performance.md uses these counts to read the H100 figures.

    python benchmarks/count_ops.py
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from percae.loss import build_loss
from percae.model import AutoencoderConfig, build_autoencoder
from percae.predictors import PredictorConfig, fit_predictor_grid


class CountOperations(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def autoencoder_step(loss_name: str, bf16: bool, batch: int = 512):
    model = build_autoencoder(AutoencoderConfig("ae", 32, 64), seed=0).to(
        memory_format=torch.channels_last
    )
    loss_fn = build_loss(loss_name, "alexnet-random").to(memory_format=torch.channels_last)
    if loss_name == "perceptual":
        loss_fn.cpu_chunk = None  # counted as on CUDA, where the batch goes through whole
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    x = torch.rand(batch, 3, 64, 64).to(memory_format=torch.channels_last)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x).reconstruction, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # optimizer state made
    with CountOperations() as ops:
        step()
    with FlopCounterMode(display=False) as flops:
        step()
    return ops.count, flops.get_total_flops() / batch


def grid_operations_per_step(train: int = 2048, val: int = 512) -> float:
    """Operations per training step, validation's share included (4 steps per epoch here,
    validation a quarter of training, as in bench_speed.py's grid); early stopping cannot
    end a 4-epoch run (patience is at least 10)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(train + val, 32)).astype(np.float32)
    y = rng.normal(size=(train + val, 2)).astype(np.float32)

    def count(epochs):
        with CountOperations() as ops:
            fit_predictor_grid(
                x[:train],
                y[:train],
                x[train:],
                y[train:],
                config=PredictorConfig(epochs=epochs, device="cpu"),
            )
        return ops.count

    return (count(4) - count(2)) / (2 * train // 512)


def main() -> None:
    for loss_name in ("pixel", "perceptual"):
        for bf16 in (False, True):
            ops, flops = autoencoder_step(loss_name, bf16)
            print(
                f"autoencoder step, {loss_name} loss (AlexNet's architecture), bf16 autocast "
                f"{bf16}: {ops} operations, {flops / 1e9:.3f} GFLOP per image"
            )
    print(f"predictor grid step: {grid_operations_per_step():.0f} operations")


if __name__ == "__main__":
    main()
