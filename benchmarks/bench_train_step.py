"""One autoencoder training step (AE, z=32, 64x64) in float32, channels-last and bf16
autocast, with pixel and perceptual loss: what each of percae's choices for the convolutions
is worth on this machine (docs/performance.md). "percae's layout" is `to_channels_last`:
channels-last, but on a CPU the transposed convolutions' weights left contiguous.

    python benchmarks/bench_train_step.py [--device cpu|cuda] [--perceptual-net NAME] [--batch 512]
"""

from __future__ import annotations

import argparse
import time

import torch

from percae.device import to_channels_last
from percae.loss import build_loss
from percae.model import AutoencoderConfig, build_autoencoder

LAYOUTS = ("contiguous", "channels-last", "percae")


def images_per_second(loss_name, net, layout, bf16, device, batch, seconds=6.0):
    model = build_autoencoder(AutoencoderConfig("ae", 32, 64), seed=0).to(device)
    loss_fn = build_loss(loss_name, net).to(device)
    if layout == "channels-last":
        model, loss_fn = (
            model.to(memory_format=torch.channels_last),
            loss_fn.to(memory_format=torch.channels_last),
        )
    elif layout == "percae":
        model, loss_fn = to_channels_last(model, device), to_channels_last(loss_fn, device)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    images = torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8, device=device)
    times = []
    while len(times) < 4 or sum(times[2:]) < seconds:
        t0 = time.perf_counter()
        x = images.permute(0, 3, 1, 2).float().div(255)  # NHWC memory: already channels-last
        if layout == "contiguous":
            x = x.contiguous()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
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
    p.add_argument("--perceptual-net", default="efficientnet-lite0")
    p.add_argument("--batch", type=int, default=512)
    args = p.parse_args()
    device = torch.device(args.device)
    cells = [(layout, False) for layout in LAYOUTS] + [(layout, True) for layout in LAYOUTS[1:]]
    print(
        "| step, images/s | "
        + " | ".join(f"{layout}{' + bf16' if bf else ''}" for layout, bf in cells)
        + " |\n"
        + "|---" * (len(cells) + 1)
        + "|"
    )
    for loss_name in ("pixel", "perceptual"):
        row = [
            images_per_second(loss_name, args.perceptual_net, layout, bf, device, args.batch)
            for layout, bf in cells
        ]
        print(f"| {loss_name} | " + " | ".join(f"{r:.0f}" for r in row) + " |", flush=True)


if __name__ == "__main__":
    main()
