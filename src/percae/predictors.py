"""Predictors on embeddings: the paper's grid of MLPs and linear regressors, all
trained together in one vectorised pass (stacked weights, batched matmuls), each
with its own early stopping and best epoch.

Every predictor is initialised from its own seed (derived from the grid seed and its
name), so training it alone with `fit_predictor_grid(..., specs=[spec])` starts from
the same weights and sees the same batches as inside the grid.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch

from .config import ConfigError, JsonConfig
from .training import resolve_device

HIDDEN_ACTIVATIONS = ("relu", "sigmoid")
OUTPUT_ACTIVATIONS = ("none", "softmax")
HIDDEN_SIZES = (32, 64, 128)


@dataclass(frozen=True)
class PredictorSpec:
    hidden: tuple[int, ...] = ()
    hidden_activation: str | None = None
    output_activation: str = "none"

    @property
    def kind(self) -> str:
        return "mlp" if self.hidden else "linear"

    @property
    def name(self) -> str:
        parts = [self.kind, *map(str, self.hidden)]
        if self.hidden:
            parts.append(self.hidden_activation or "")
        parts.append(self.output_activation)
        return "-".join(parts)

    def to_dict(self) -> dict:
        return {"hidden": list(self.hidden), "hidden_activation": self.hidden_activation, "output_activation": self.output_activation}

    @classmethod
    def from_dict(cls, d: dict) -> "PredictorSpec":
        return cls(tuple(d["hidden"]), d["hidden_activation"], d["output_activation"])


def predictor_grid() -> list[PredictorSpec]:
    """The paper's search space: 1 or 2 hidden layers of 32/64/128 units (the second no
    larger than the first) x ReLU/Sigmoid x no/Softmax output = 36 MLPs, plus linear
    regressors with no/Softmax output = 2; 38 predictors in all."""
    layouts = [(h,) for h in HIDDEN_SIZES] + [(a, b) for a in HIDDEN_SIZES for b in HIDDEN_SIZES if b <= a]
    mlps = [PredictorSpec(h, act, out) for h, act, out in product(layouts, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS)]
    linear = [PredictorSpec((), None, out) for out in OUTPUT_ACTIVATIONS]
    return mlps + linear


@dataclass
class PredictorConfig(JsonConfig):
    epochs: int = 500
    batch_size: int = 512
    lr: float = 1e-3
    patience: int | None = None  # None: max(10, epochs // 20)
    seed: int = 0
    device: str = "auto"

    @property
    def effective_patience(self) -> int:
        return self.patience if self.patience is not None else max(10, self.epochs // 20)


@dataclass
class FittedPredictor:
    spec: PredictorSpec
    weights: list[torch.Tensor]  # W0, b0, W1, b1, ... with W of shape (in, out)
    val_loss: float
    best_epoch: int
    epochs_run: int
    seconds: float = 0.0

    @torch.no_grad()
    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        h = torch.as_tensor(np.asarray(x, dtype=np.float32))
        layers = len(self.weights) // 2
        for i in range(layers):
            h = h @ self.weights[2 * i] + self.weights[2 * i + 1]
            if i < layers - 1:
                h = torch.relu(h) if self.spec.hidden_activation == "relu" else torch.sigmoid(h)
        if self.spec.output_activation == "softmax":
            h = torch.softmax(h, dim=-1)
        return h.numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"w{i}": w for i, w in enumerate(self.weights)}


def _member_seed(seed: int, spec: PredictorSpec) -> int:
    return (seed * 1_000_003 + zlib.crc32(spec.name.encode())) % (2**63)


class _Group:
    """Predictors that share one layout, stacked along a leading member dimension."""

    def __init__(self, specs: list[PredictorSpec], n_in: int, n_out: int, seed: int, device: torch.device):
        self.specs = specs
        sizes = [n_in, *specs[0].hidden, n_out]
        self.params: list[torch.Tensor] = []
        per_member = []
        for spec in specs:
            g = torch.Generator().manual_seed(_member_seed(seed, spec))
            tensors = []
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
                bound = 1.0 / math.sqrt(fan_in)  # torch.nn.Linear's default initialisation
                tensors.append((torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound)
                tensors.append((torch.rand(1, fan_out, generator=g) * 2 - 1) * bound)
            per_member.append(tensors)
        for i in range(len(per_member[0])):
            self.params.append(torch.stack([m[i] for m in per_member]).to(device).requires_grad_(True))
        self.relu = torch.tensor([s.hidden_activation == "relu" for s in specs], device=device).view(-1, 1, 1)
        self.softmax = torch.tensor([s.output_activation == "softmax" for s in specs], device=device).view(-1, 1, 1)
        self.best = [p.detach().clone() for p in self.params]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        layers = len(self.params) // 2
        for i in range(layers):
            h = torch.matmul(h, self.params[2 * i]) + self.params[2 * i + 1]
            if i < layers - 1:
                h = torch.where(self.relu, torch.relu(h), torch.sigmoid(h))
        return torch.where(self.softmax, torch.softmax(h, dim=-1), h)

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member MSE, shape (members,)."""
        return (self.forward(x) - y).pow(2).mean(dim=(1, 2))


def fit_predictor_grid(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    specs: list[PredictorSpec] | None = None,
    config: PredictorConfig | None = None,
) -> list[FittedPredictor]:
    """Train every predictor in `specs` (default: the whole grid) with MSE, Adam and
    early stopping on validation loss; return each at its best validation epoch."""
    import time

    config = config or PredictorConfig()
    specs = list(specs) if specs is not None else predictor_grid()
    if len(train_x) < 1 or len(val_x) < 1:
        raise ConfigError(f"need training and validation embeddings, got {len(train_x)} and {len(val_x)}")
    t0 = time.perf_counter()
    device = resolve_device(config.device)
    tx = torch.as_tensor(np.asarray(train_x, np.float32), device=device)
    ty = torch.as_tensor(np.asarray(train_y, np.float32), device=device).reshape(len(tx), -1)
    vx = torch.as_tensor(np.asarray(val_x, np.float32), device=device)
    vy = torch.as_tensor(np.asarray(val_y, np.float32), device=device).reshape(len(vx), -1)
    layouts: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(specs):
        layouts.setdefault(s.hidden, []).append(i)
    groups = [_Group([specs[i] for i in idx], tx.shape[1], ty.shape[1], config.seed, device) for idx in layouts.values()]
    order_index = [i for idx in layouts.values() for i in idx]
    optimizer = torch.optim.Adam([p for g in groups for p in g.params], lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)

    m = len(specs)
    best_val = torch.full((m,), math.inf, device=device)
    best_epoch = torch.zeros(m, dtype=torch.long, device=device)
    bad = torch.zeros(m, dtype=torch.long, device=device)
    patience = config.effective_patience
    epochs_run = torch.zeros(m, dtype=torch.long, device=device)
    for epoch in range(1, config.epochs + 1):
        active = bad < patience
        perm = torch.randperm(len(tx), generator=generator).to(device)
        for start in range(0, len(tx), config.batch_size):
            idx = perm[start:start + config.batch_size]
            xb, yb = tx[idx], ty[idx]
            # Summing per-member losses gives each member exactly its own gradient.
            loss = sum(g.losses(xb, yb).sum() for g in groups)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            val = torch.cat([_batched_val(g, vx, vy, config.batch_size * 8) for g in groups])
            epochs_run += active.long()
            improved = (val < best_val) & active
            best_val = torch.where(improved, val, best_val)
            best_epoch = torch.where(improved, torch.full_like(best_epoch, epoch), best_epoch)
            bad = torch.where(improved, torch.zeros_like(bad), bad + active.long())
            offset = 0
            for g in groups:
                sel = improved[offset:offset + len(g.specs)].view(-1, 1, 1)
                for b, p in zip(g.best, g.params):
                    b.copy_(torch.where(sel, p, b))
                offset += len(g.specs)
        if not bool((bad < patience).any()):
            break
    seconds = time.perf_counter() - t0
    results: list[FittedPredictor | None] = [None] * m
    bv, be, er = best_val.cpu().tolist(), best_epoch.cpu().tolist(), epochs_run.cpu().tolist()
    k = 0
    for g in groups:
        for j, spec in enumerate(g.specs):
            i = order_index[k]
            weights = [b[j].detach().cpu().clone() for b in g.best]
            results[i] = FittedPredictor(spec, weights, bv[k], be[k], er[k], seconds)
            k += 1
    return results  # type: ignore[return-value]


def _batched_val(group: _Group, vx: torch.Tensor, vy: torch.Tensor, batch: int) -> torch.Tensor:
    total = torch.zeros(len(group.specs), device=vx.device)
    for start in range(0, len(vx), batch):
        xb, yb = vx[start:start + batch], vy[start:start + batch]
        total += group.losses(xb, yb) * len(xb)
    return total / len(vx)


def select_best(fitted: list[FittedPredictor], kind: str) -> FittedPredictor:
    """The predictor of `kind` ("mlp" or "linear") with the lowest validation loss."""
    candidates = [f for f in fitted if f.spec.kind == kind and math.isfinite(f.val_loss)]
    if not candidates:
        raise ValueError(f"no trained {kind} predictor to select from")
    return min(candidates, key=lambda f: f.val_loss)
