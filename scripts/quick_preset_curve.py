"""Sizing experiment for the quick preset: train one autoencoder (AE or P.AE) on a LunarLander
collection with a given batch size and learning rate, and after every `--every` epochs fit
the predictor grid on its embeddings and print the test error of the best MLP and linear
regressor. This is how the quick preset's batch size and epochs were chosen
(docs/results/quick-preset/README.md gives the runs). It uses the library's internals
(its own minimal loop: Adam, no early stopping, no checkpoints) so that one run gives a
learning curve rather than one point.

    python scripts/quick_preset_curve.py --root COLLECTION --bs 16 --epochs 2 --model P.AE --seed 2
"""

import time
import argparse
import tempfile
import torch
from percae.data import load_study_data, split
from percae.model import AutoencoderConfig, build_autoencoder
from percae.loss import build_loss
from percae.device import DeviceImages, autocast, to_channels_last
from percae.training import objective
from percae.embeddings import encode_images
from percae.layout import RunFiles
from percae.predictors import fit_predictors, trivial_baseline
from percae.study.data import _limit
from percae.predictors import PredictorConfig

p = argparse.ArgumentParser()
p.add_argument("--root", default="/tmp/exp/ll200")
p.add_argument("--n", type=int, default=6000)
p.add_argument("--bs", type=int, default=64)
p.add_argument("--epochs", type=int, default=8)
p.add_argument("--every", type=int, default=2)
p.add_argument("--z", type=int, default=32)
p.add_argument("--net", default="alexnet-random")
p.add_argument("--model", default="P.AE")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--data-seed", type=int, default=0)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--pepochs", type=int, default=300)
a = p.parse_args()
torch.manual_seed(a.seed)
data = load_study_data("lunarlander", a.root, seed=a.data_seed)
data.autoencoder = _limit(data.autoencoder, a.n, a.data_seed)
tr, va = split(data.autoencoder, 0.2, a.data_seed)
ptr, pva = split(data.predictor, 0.2, a.data_seed)
ytr, yva, yte = (data.targets(s) for s in (ptr, pva, data.test))
print(
    "sizes",
    len(tr),
    len(va),
    "baseline %.2f" % trivial_baseline("position", ytr, yte),
    vars(a),
    flush=True,
)
loss_name = "perceptual" if a.model.startswith("P.") else "pixel"
kind = "vae" if "VAE" in a.model else "ae"
dev = torch.device("cpu")
model = to_channels_last(
    build_autoencoder(AutoencoderConfig(kind, a.z, 64), seed=a.seed), torch.device("cpu")
)
loss_fn = to_channels_last(build_loss(loss_name, a.net), torch.device("cpu"))
opt = torch.optim.Adam(model.parameters(), lr=a.lr, fused=True)
g = torch.Generator().manual_seed(a.seed)
D = DeviceImages(tr, dev)
t_train = 0
for ep in range(1, a.epochs + 1):
    t0 = time.time()
    model.train()
    order = torch.randperm(D.n, generator=g)
    if D.n % a.bs == 1:
        order = order[:-1]
    tot = 0
    for _pos, x in D.indexed_batches(a.bs, order):
        with autocast(dev, True):
            loss = objective(model, loss_fn, x, 0.01 if kind == "vae" else 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(x)
    t_train += time.time() - t0
    msg = f"ep {ep} loss {tot / len(order):.4g} t {t_train:.0f}s"
    if ep % a.every == 0:
        model.eval()
        zp = encode_images(model, ptr)
        zv = encode_images(model, pva)
        zt = encode_images(model, data.test)
        with tempfile.TemporaryDirectory() as d:
            rec = fit_predictors(
                "position",
                zp,
                ytr,
                zv,
                yva,
                zt,
                yte,
                PredictorConfig(epochs=a.pepochs, batch_size=512, seed=a.seed),
                RunFiles(d),
            )
        msg += (
            f"  mlp {rec['selected']['mlp']['test_metric']:.2f} "
            f"lin {rec['selected']['linear']['test_metric']:.2f}"
        )
    print(msg, flush=True)
