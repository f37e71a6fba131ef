"""The perceptual step's levers, each measured against the pixel step on the same frames, in
its own process, the arms alternating (a machine's speed drifts within minutes):

    python benchmarks/bench_perceptual_levers.py --batch 512 --repeats 2
    python benchmarks/bench_perceptual_levers.py --batch 16 --images 4000 --repeats 2

Arms: pixel; perceptual as percae runs it (a CPU batch whose activations fit in 256 MB goes
through whole); the earlier chunks of 128 images (recomputed in backward); the targets'
features kept between epochs (the feature cache, on a CPU too); the step compiled
(torch.compile). Prints each arm's images/s (median over repeats) and its overhead over pixel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ARMS = {
    "pixel": ["--only", "ae-percae-pixel"],
    "perceptual": ["--only", "ae-percae-perceptual"],
    "perceptual, chunks of 128": ["--only", "ae-percae-perceptual", "--cpu-chunk", "128"],
    "perceptual + feature cache": ["--only", "ae-percae-perceptual", "--feature-cache-mb", "4000"],
    "pixel, compiled": ["--only", "ae-percae-pixel", "--compile-cpu"],
    "perceptual, compiled": ["--only", "ae-percae-perceptual", "--compile-cpu"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--images", type=int, default=5120)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--root", default=None)
    p.add_argument("--perceptual-net", default="alexnet-random")
    p.add_argument("--arms", default=None, help="comma-separated subset of the arms")
    args = p.parse_args()
    bench = os.path.join(os.path.dirname(__file__), "bench_speed.py")
    common = [
        "--batch",
        str(args.batch),
        "--images",
        str(args.images),
        "--epochs",
        str(args.epochs),
        "--perceptual-net",
        args.perceptual_net,
    ] + (["--root", args.root] if args.root else [])
    arms = args.arms.split(",") if args.arms else list(ARMS)
    seen = {arm: [] for arm in arms}
    for _ in range(args.repeats):
        for arm in arms:
            out = subprocess.run(
                [sys.executable, bench, *common, *ARMS[arm], "--json", "/dev/stdout"],
                capture_output=True,
                text=True,
            )
            lines = [line for line in out.stdout.splitlines() if line.startswith("ae-percae")]
            result = json.loads(lines[0].split(None, 1)[1])
            seen[arm].append(result["images_per_s"])
            print(f"{arm:30s} {result['images_per_s']:7.1f} img/s", flush=True)
    pixel = statistics.median(seen["pixel"]) if "pixel" in seen else None
    print(
        f"\nbatch {args.batch}, {args.images} frames, {args.perceptual_net}; "
        f"median of {args.repeats}:"
    )
    for arm, values in seen.items():
        m = statistics.median(values)
        over = f"  overhead {100 * (pixel / m - 1):+.0f}%" if pixel and "pixel" not in arm else ""
        print(f"  {arm:30s} {m:7.1f} img/s{over}")


if __name__ == "__main__":
    main()
