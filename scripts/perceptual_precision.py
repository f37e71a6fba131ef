"""The perceptual loss under bf16 autocast against float32, with the network run in bf16 (as
percae ran it before) and in float32 (as it runs now): the loss's ratio and the gradient's
cosine on reconstructions as good as a trained autoencoder's (frames + N(0, sigma)) and on
frames without the lander; and how many distinct values the sigmoid features take.

    python scripts/perceptual_precision.py --root COLLECTION [--frames 64]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from percae.data.lunarlander import load_lunarlander
from percae.loss import PerceptualLoss
from percae.perceptual_networks import build_perceptual_network


class Bf16Network(PerceptualLoss):
    """The loss with its network left to the surrounding autocast (the earlier behaviour)."""

    def features(self, images):
        return torch.sigmoid(self.network(images))


def loss_and_grad(loss, reconstruction, target, bf16):
    r = reconstruction.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        value = loss(r, target)
    value.float().backward()
    return value.item(), r.grad.flatten()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", required=True)
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--nets", default="alexnet-random,efficientnet-lite0-s8")
    args = p.parse_args()
    c = load_lunarlander(args.root)
    pick = np.flatnonzero((c.positions[:, 1] > 5) & (c.positions[:, 1] < 40))[: args.frames]
    frames = np.array(c.images[pick])
    erased = frames.copy()
    for image, (x, y) in zip(erased, np.round(c.positions[pick]).astype(int)):
        image[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4] = 0
    as_float = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    x, without = as_float(frames), as_float(erased)
    g = torch.Generator().manual_seed(0)
    cases = {
        f"frames + N(0, {s})": (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1)
        for s in (0.01, 0.03)
    }
    cases["lander removed"] = without
    print(f"{len(pick)} frames of {args.root}\n")
    print(
        "| network | reconstruction | loss, float32 | network in bf16: loss ratio, gradient "
        "cosine | network in float32: loss ratio, gradient cosine |\n|---|---|---|---|---|"
    )
    for net in args.nets.split(","):
        network = build_perceptual_network(net)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            distinct = torch.sigmoid(network(x)).unique().numel()
        for name, reconstruction in cases.items():
            exact, exact_grad = loss_and_grad(
                PerceptualLoss(network, cpu_chunk=None), reconstruction, x, False
            )
            cells = []
            for cls in (Bf16Network, PerceptualLoss):
                value, grad = loss_and_grad(cls(network, cpu_chunk=None), reconstruction, x, True)
                cells.append(
                    f"{value / exact:.3f}, "
                    f"{F.cosine_similarity(grad, exact_grad, dim=0).item():.3f}"
                )
            print(f"| {net} | {name} | {exact:.3g} | {cells[0]} | {cells[1]} |")
        print(f"| {net} | distinct values of the sigmoid features in bf16: {distinct} | | | |")


if __name__ == "__main__":
    main()
