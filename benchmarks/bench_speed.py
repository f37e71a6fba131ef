"""Speed benchmark: percae against a baseline written in the study's own style.

Prints, for one machine in one run:
  - autoencoder training images/s (train + validation images per epoch second) with pixel
    and perceptual loss, percae vs the baseline (float32 dataset in host memory, a
    DataLoader over a TensorDataset, a host-to-device copy per batch, backward during
    validation), and their ratio;
  - the perceptual loss's time overhead;
  - seconds to train the predictor grid of one autoencoder, vectorised vs one at a time;
  - peak memory of each (host RSS of its own process; GPU peak allocation on CUDA).

Each measurement runs in a fresh subprocess so that its peak memory is its own.

    python benchmarks/bench_speed.py                # defaults sized for a 2-core CPU
    python benchmarks/bench_speed.py --images 32768 --epochs 3   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from frames import frames, uint8_frames  # noqa: E402


def peak_memory(device) -> dict:
    import torch

    out = {"host_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def ae_percae(args, loss_name, compile=False):
    from percae.data import ImageSet
    from percae.device import resolve_device
    from percae.model import AutoencoderConfig, build_autoencoder
    from percae.training import TrainConfig, train_autoencoder

    images = uint8_frames(args.images, args.root)
    n_val = args.images // 5
    train, val = ImageSet(images[n_val:]), ImageSet(images[:n_val])
    device = resolve_device(args.device)
    model = build_autoencoder(AutoencoderConfig("ae", args.z, 64), seed=0)
    config = TrainConfig(
        loss=loss_name,
        perceptual_net=args.perceptual_net,
        epochs=args.epochs + 1,
        batch_size=args.batch,
        patience=100,
        device=args.device,
        compile=compile or args.compile_cpu,
        perceptual_scale=1.0,
        feature_cache_mb=args.feature_cache_mb,
    )
    loss = config.build_loss()
    if loss_name == "perceptual" and args.cpu_chunk != "auto":
        loss.cpu_chunk = None if args.cpu_chunk == "none" else int(args.cpu_chunk)
    result = train_autoencoder(model, train, val, config, progress=False, log=None, loss_fn=loss)
    epoch_s = [r["seconds"] for r in result.history[1:]]  # first epoch: warm-up
    return {
        "images_per_s": args.images / (sum(epoch_s) / len(epoch_s)),
        "val_loss": [r["val_loss"] for r in result.history],
        **peak_memory(device),
    }


def ae_baseline(args, loss_name):
    """The study's own model, loss, data path and loop (benchmarks/study_baseline.py)."""
    import torch

    from study_baseline import train_study_way

    torch.set_num_threads(torch.get_num_threads())
    data = frames(args.images, args.root)
    n_val = args.images // 5
    rows = train_study_way(data[n_val:], data[:n_val], args.epochs + 1, args.batch, loss_name)
    epoch_s = [r["seconds"] for r in rows[1:]]
    return {
        "images_per_s": args.images / (sum(epoch_s) / len(epoch_s)),
        "val_loss": [r["val_loss"] for r in rows],
        **peak_memory(torch.device("cpu")),
    }


def grid_data(args):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.grid_samples, 32)).astype(np.float32)
    w = rng.normal(size=(32, 2)).astype(np.float32)
    y = np.tanh(x @ w) + 0.1 * rng.normal(size=(len(x), 2)).astype(np.float32)
    n = len(x) * 4 // 5
    return x[:n], y[:n], x[n:], y[n:]


def warm_torch_optim() -> None:
    """The first torch.optim optimizer a process builds imports torch._dynamo (about 1 s on
    a 2-core CPU): a one-time cost of PyTorch, paid in a study by the autoencoder's
    optimizer long before any grid, so both grid arms pay it before their timer starts."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def grid_vectorised(args):
    from percae.predictors import PredictorConfig, fit_predictor_grid
    from percae.device import resolve_device

    tx, ty, vx, vy = grid_data(args)
    config = PredictorConfig(epochs=args.grid_epochs, patience=10**6, device=args.device)
    warm_torch_optim()
    t0 = time.perf_counter()
    fitted = fit_predictor_grid(tx, ty, vx, vy, config=config)
    return {
        "seconds": time.perf_counter() - t0,
        "predictors": len(fitted),
        **peak_memory(resolve_device(args.device)),
    }


def grid_one_at_a_time(args):
    """The study's way: each predictor as its own nn.Sequential, DataLoader and loop, one
    after the other, with a backward pass during validation."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from percae.predictors import predictor_grid
    from percae.device import resolve_device

    device = resolve_device(args.device)
    tx, ty, vx, vy = (torch.from_numpy(a) for a in grid_data(args))
    loader = DataLoader(TensorDataset(tx, ty), batch_size=512, shuffle=True)
    val_loader = DataLoader(TensorDataset(vx, vy), batch_size=512)
    warm_torch_optim()
    t0 = time.perf_counter()
    specs = predictor_grid()
    kept = {}
    for spec in specs:
        sizes = [tx.shape[1], *spec.hidden, ty.shape[1]]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU() if spec.hidden_activation == "relu" else nn.Sigmoid())
        if spec.output_activation == "softmax":
            layers.append(nn.Softmax(dim=-1))
        net = nn.Sequential(*layers).to(device)
        opt = torch.optim.Adam(net.parameters())
        best = float("inf")
        for _epoch in range(args.grid_epochs):
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                loss = nn.functional.mse_loss(net(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            total = 0.0
            for xb, yb in val_loader:  # as the study's code did: a backward pass during validation
                xb, yb = xb.to(device), yb.to(device)
                loss = nn.functional.mse_loss(net(xb), yb)
                opt.zero_grad()
                loss.backward()
                total += loss.item() * len(xb)
            val = total / len(vx)
            if val < best:
                best = val
                kept[spec.name] = {
                    k: v.clone() for k, v in net.state_dict().items()
                }  # the best epoch's weights
    return {"seconds": time.perf_counter() - t0, "predictors": len(specs), **peak_memory(device)}


COMPILED_ITEMS = {
    "ae-percae-pixel-compiled": lambda a: ae_percae(a, "pixel", compile=True),
    "ae-percae-perceptual-compiled": lambda a: ae_percae(a, "perceptual", compile=True),
}

ITEMS = {
    "ae-percae-pixel": lambda a: ae_percae(a, "pixel"),
    "ae-percae-perceptual": lambda a: ae_percae(a, "perceptual"),
    "ae-baseline-pixel": lambda a: ae_baseline(a, "pixel"),
    "ae-baseline-perceptual": lambda a: ae_baseline(a, "perceptual"),
    "grid-vectorised": grid_vectorised,
    "grid-one-at-a-time": grid_one_at_a_time,
}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--images", type=int, default=5120, help="train + validation images (1/5 validation)"
    )
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    p.add_argument("--perceptual-net", default="alexnet-random")
    p.add_argument("--batch", type=int, default=512, help="autoencoder batch size")
    p.add_argument("--z", type=int, default=32)
    p.add_argument("--root", default=None, help="a LunarLander collection's frames [synthetic]")
    p.add_argument(
        "--cpu-chunk",
        default="auto",
        help="percae, perceptual: images per chunk through the network on a CPU (auto, none, N)",
    )
    p.add_argument(
        "--compile-cpu",
        action="store_true",
        help="percae: torch.compile the training step on a CPU too",
    )
    p.add_argument(
        "--feature-cache-mb",
        type=float,
        default=None,
        help="percae: the targets' features kept [its default: all on CUDA, none on a CPU]",
    )
    p.add_argument("--grid-samples", type=int, default=10000)
    p.add_argument("--grid-epochs", type=int, default=30)
    p.add_argument("--device", default="auto")
    p.add_argument("--only", help="comma-separated subset of: " + ", ".join(ITEMS))
    p.add_argument(
        "--compile-only",
        action="store_true",
        help="CUDA: time percae with torch.compile against percae without it",
    )
    p.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="CUDA: let cuDNN time its algorithms for each convolution shape (every item, "
        "percae and baseline alike); percae does not set it yet: not measured",
    )
    p.add_argument("--item", choices=list(ITEMS) + list(COMPILED_ITEMS), help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    from percae.predictors import predictor_grid

    if args.item:
        if args.cudnn_benchmark:
            import torch

            torch.backends.cudnn.benchmark = True
        print(json.dumps({**ITEMS, **COMPILED_ITEMS}[args.item](args)))
        return
    if args.compile_only:
        return compare_compiled(args)
    forwarded = forwarded_args()
    results, failed = {}, []
    for item in args.only.split(",") if args.only else ITEMS:
        result = run_item(item, forwarded)
        if result is None:
            failed.append(item)  # one broken item must not hide the others' figures
        else:
            results[item] = result
    r = results

    def ratio(a, b, key):
        return r[a][key] / r[b][key] if a in r and b in r else float("nan")

    summary = {
        "pixel_speedup": ratio("ae-percae-pixel", "ae-baseline-pixel", "images_per_s"),
        "perceptual_speedup": ratio(
            "ae-percae-perceptual", "ae-baseline-perceptual", "images_per_s"
        ),
        "perceptual_overhead_percae": ratio(
            "ae-percae-pixel", "ae-percae-perceptual", "images_per_s"
        )
        - 1,
        "perceptual_overhead_baseline": ratio(
            "ae-baseline-pixel", "ae-baseline-perceptual", "images_per_s"
        )
        - 1,
        "grid_speedup": ratio("grid-one-at-a-time", "grid-vectorised", "seconds"),
    }

    def ips(item):
        return (
            f"{r[item]['images_per_s']:.0f} img/s"
            if item in r
            else ("failed" if item in failed else "not run")
        )

    def shown(value, spec, scale=1.0, unit=""):
        return (
            "n/a" if value != value else f"{scale * value:{spec}}{unit}"
        )  # value != value: nan, an arm not run

    print()
    print(
        f"autoencoder, pixel loss:      percae {ips('ae-percae-pixel')}, "
        f"baseline {ips('ae-baseline-pixel')}, ratio "
        f"{shown(summary['pixel_speedup'], '.2f', unit='x')}"
    )
    print(
        f"autoencoder, perceptual loss: percae {ips('ae-percae-perceptual')}, "
        f"baseline {ips('ae-baseline-perceptual')}, ratio "
        f"{shown(summary['perceptual_speedup'], '.2f', unit='x')}"
    )
    print(
        f"perceptual loss overhead ({args.perceptual_net}): "
        f"percae {shown(summary['perceptual_overhead_percae'], '+.0f', 100, '%')}, "
        f"baseline {shown(summary['perceptual_overhead_baseline'], '+.0f', 100, '%')} "
        "(paper: +12 +- 3%, AlexNet)"
    )
    secs = {
        k: (f"{r[k]['seconds']:.1f}s" if k in r else "failed" if k in failed else "not run")
        for k in ("grid-vectorised", "grid-one-at-a-time")
    }
    print(
        f"predictor grid ({len(predictor_grid())} predictors, {args.grid_epochs} epochs): "
        f"vectorised {secs['grid-vectorised']}, one at a time {secs['grid-one-at-a-time']}, "
        f"ratio {shown(summary['grid_speedup'], '.1f', unit='x')}"
    )
    for item in r:
        mem = f"host peak RSS {r[item]['host_peak_rss_mb']:.0f} MB"
        if "gpu_peak_mb" in r[item]:
            mem += f", GPU peak {r[item]['gpu_peak_mb']:.0f} MB"
        print(f"peak memory {item:24s} {mem}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"args": vars(args), "results": results, "summary": summary, "failed": failed},
                f,
                indent=2,
            )
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


def run_item(item: str, forwarded: list[str]) -> dict | None:
    """One measurement in a fresh process (so that its peak memory is its own); None if it
    failed."""
    out = subprocess.run(
        [sys.executable, __file__, *forwarded, "--item", item], capture_output=True, text=True
    )
    if out.returncode:
        print(f"{item:30s} FAILED:\n{out.stderr[-2000:]}", flush=True)
        return None
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{item:30s} {json.dumps(result)}", flush=True)
    return result


def compare_compiled(args) -> None:
    forwarded = forwarded_args()
    for plain, compiled in zip(("ae-percae-pixel", "ae-percae-perceptual"), COMPILED_ITEMS):
        a = run_item(plain, forwarded)
        b = run_item(compiled, forwarded) if a else None
        if a and b:
            print(
                f"torch.compile speed-up ({plain[10:]}): "
                f"{b['images_per_s'] / a['images_per_s']:.2f}x"
            )


def forwarded_args() -> list[str]:
    """This run's arguments for an item's subprocess: without --json/--only/--compile-only."""
    out, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a in ("--json", "--only"):
            skip = True
        elif not a.startswith(("--json=", "--only=", "--compile-only")):
            out.append(a)
    return out


if __name__ == "__main__":
    main()
