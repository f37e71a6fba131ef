"""What computing the perceptual network in float32 costs: one autoencoder training step
(AE, z=32, 64x64, channels-last, bf16 autocast for the autoencoder) with the perceptual
network, its sigmoid and the loss in float32 (percae's loss) against the same network run
under the autocast (bf16 convolutions and sigmoid, the earlier behaviour), per batch size.

    python benchmarks/bench_perceptual_precision.py [--device cpu|cuda] [--nets alexnet-random,...]
"""

from __future__ import annotations

import argparse
import time

import torch

from percae.device import to_channels_last
from percae.loss import PerceptualLoss
from percae.perceptual_networks import build_perceptual_network
from percae.model import AutoencoderConfig, build_autoencoder


class Bf16PerceptualLoss(PerceptualLoss):
    """The loss with its network left to the surrounding autocast."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(images))


def images_per_second(
    loss_cls, net: str, batch: int, device: torch.device, seconds: float = 6.0
) -> float:
    model = to_channels_last(build_autoencoder(AutoencoderConfig("ae", 32, 64), seed=0), device)
    loss_fn = to_channels_last(loss_cls(build_perceptual_network(net), name=net), device)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    images = torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8, device=device)
    times: list[float] = []
    while len(times) < 4 or sum(times[2:]) < seconds:
        t0 = time.perf_counter()
        x = images.permute(0, 3, 1, 2).float().div(255)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_fn(model(x).reconstruction, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    timed = sorted(times[2:])  # two warm-up steps
    return batch / timed[len(timed) // 2]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--nets", default="alexnet-random,efficientnet-lite0-s8")
    p.add_argument("--batches", default="16,512")
    args = p.parse_args()
    device = torch.device(args.device)
    print(
        "| network | batch | images/s, network in bf16 | images/s, network in float32 | cost |"
        "\n|---|---|---|---|---|"
    )
    for net in args.nets.split(","):
        for batch in map(int, args.batches.split(",")):
            bf16 = images_per_second(Bf16PerceptualLoss, net, batch, device)
            fp32 = images_per_second(PerceptualLoss, net, batch, device)
            print(
                f"| {net} | {batch} | {bf16:.0f} | {fp32:.0f} | {bf16 / fp32 - 1:+.0%} time |",
                flush=True,
            )


if __name__ == "__main__":
    main()
