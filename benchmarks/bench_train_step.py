"""One autoencoder training step (AE, z=32, 64x64, batch 512) in float32, channels-last,
and bf16 autocast, with pixel and perceptual loss: what each of percae's choices for the
convolutions is worth on this machine (docs/performance.md).

    python benchmarks/bench_train_step.py [--device cpu|cuda] [--perceptual-net NAME]
"""

from __future__ import annotations

import argparse
import time

import torch

from percae.loss import build_loss
from percae.model import AutoencoderConfig, build_autoencoder


def images_per_second(loss_name, net, channels_last, bf16, device, steps=6):
    model = build_autoencoder(AutoencoderConfig("ae", 32, 64), seed=0).to(device)
    loss_fn = build_loss(loss_name, net).to(device)
    if channels_last:
        model, loss_fn = model.to(memory_format=torch.channels_last), loss_fn.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters())
    images = torch.randint(0, 256, (512, 64, 64, 3), dtype=torch.uint8, device=device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        x = images.permute(0, 3, 1, 2).float().div(255)  # NHWC memory: already channels-last
        if not channels_last:
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
    return 512 / timed[len(timed) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--perceptual-net", default="efficientnet-lite0")
    args = p.parse_args()
    device = torch.device(args.device)
    print("| step, images/s | float32 | channels-last | channels-last + bf16 |\n|---|---|---|---|")
    for loss_name in ("pixel", "perceptual"):
        row = [images_per_second(loss_name, args.perceptual_net, cl, bf, device)
               for cl, bf in ((False, False), (True, False), (True, True))]
        print(f"| {loss_name} | " + " | ".join(f"{r:.0f}" for r in row) + " |", flush=True)


if __name__ == "__main__":
    main()
