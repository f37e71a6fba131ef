"""The grid trained in one vectorised pass (stacked weights, batched matmuls, one fused Adam
step), each member with its own early stopping and best epoch; a member that has stopped leaves
the computation.

Every predictor is initialised from its own seed (derived from the grid seed and its name), so
training it alone with `fit_predictor_grid(..., specs=[spec])` starts from the same weights and
sees the same batches as inside the grid.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from ..config import ConfigError
from ..device import resolve_device
from ..progress import progress_bar
from .grid import HIDDEN_ACTIVATIONS, PredictorConfig, PredictorSpec, predictor_grid


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
                HIDDEN_ACTIVATIONS[self.spec.hidden_activation][0](h)
        if self.spec.output_activation == "softmax":
            h = torch.softmax(h, dim=-1)
        return h.numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"w{i}": w for i, w in enumerate(self.weights)}


def _member_seed(seed: int, spec: PredictorSpec) -> int:
    return (seed * 1_000_003 + zlib.crc32(spec.name.encode())) % (2**63)


def _member_order(spec: PredictorSpec) -> tuple[int, int]:
    """By hidden activation, in HIDDEN_ACTIVATIONS' order (a linear member first); within
    them, the softmax members last and first in turn (ReLU: no output activation, then
    softmax; sigmoid: softmax, then none): so each activation covers one contiguous slice of
    a group, and for two activations the softmax members do too, also once some members have
    left it."""
    softmax = spec.output_activation == "softmax"
    index = list(HIDDEN_ACTIVATIONS).index(spec.hidden_activation) if spec.hidden else 0
    return index, softmax if index % 2 == 0 else not softmax


def _activation(spec: PredictorSpec) -> str:
    return spec.hidden_activation or next(iter(HIDDEN_ACTIVATIONS))


class _Group:
    """Predictors that share one layout, stacked along a leading member dimension, in
    `_member_order`. Forward and backward are written out (a few batched matmuls per
    layer, each activation applied in place to its own members) instead of left to
    autograd, which computed both activations for every member and selected one: half
    the time on a 2-core CPU, where the matmuls are now most of it."""

    def __init__(self, specs: list[PredictorSpec], ids: list[int], n_in: int, n_out: int):
        self.specs, self.ids = specs, ids  # ids: each member's index in the whole grid
        sizes = [n_in, *specs[0].hidden, n_out]
        self.shapes = [
            s for a, b in pairwise(sizes) for s in ((len(specs), a, b), (len(specs), 1, b))
        ]
        # Each hidden activation's members: one contiguous slice (`_member_order`).
        self.activations: list[tuple[str, slice]] = []
        for j, spec in enumerate(specs):
            name = _activation(spec)
            if self.activations and self.activations[-1][0] == name:
                self.activations[-1] = (name, slice(self.activations[-1][1].start, j + 1))
            else:
                self.activations.append((name, slice(j, j + 1)))
        soft = [j for j, s in enumerate(specs) if s.output_activation == "softmax"]
        self.has_softmax = bool(soft)
        if not soft or soft == list(range(soft[0], soft[-1] + 1)):
            self.softmax = slice(soft[0], soft[-1] + 1) if soft else slice(0, 0)
        else:  # (more than two activations: the softmax members by index)
            self.softmax = torch.tensor(soft)
        self.params: list[
            torch.Tensor
        ] = []  # W0, b0, W1, b1, ...: views of the grid's flat weights
        self.grads: list[torch.Tensor] = []

    def initial_weights(self, seed: int) -> list[torch.Tensor]:
        """Each member from its own seed, as torch.nn.Linear initialises, stacked."""
        per_member = []
        for spec in self.specs:
            g = torch.Generator().manual_seed(_member_seed(seed, spec))
            tensors = []
            for i, shape in enumerate(self.shapes):
                bound = 1.0 / math.sqrt(
                    self.shapes[2 * (i // 2)][1]
                )  # 1 / sqrt(fan_in), W's and b's alike
                tensors.append((torch.rand(shape[1:], generator=g) * 2 - 1) * bound)
            per_member.append(tensors)
        return [torch.stack([m[i] for m in per_member]) for i in range(len(self.shapes))]

    def subset(self, active: list[bool]) -> _Group | None:
        keep = [j for j, i in enumerate(self.ids) if active[i]]
        if not keep:
            return None
        n_in, n_out = self.shapes[0][1], self.shapes[-1][2]
        return _Group([self.specs[j] for j in keep], [self.ids[j] for j in keep], n_in, n_out)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output after its activation, for members x batch; the last is the
        prediction."""
        h = x.expand(len(self.specs), *x.shape)
        outputs = []
        layers = len(self.params) // 2
        for i in range(layers):
            h = torch.baddbmm(self.params[2 * i + 1], h, self.params[2 * i])
            if i < layers - 1:
                for name, members in self.activations:
                    HIDDEN_ACTIVATIONS[name][0](h[members])
            outputs.append(h)
        h[self.softmax] = torch.softmax(h[self.softmax], dim=-1)
        return outputs

    def backward(self, x: torch.Tensor, outputs: list[torch.Tensor], d_pred: torch.Tensor) -> None:
        """Write the gradients of the sum of the members' losses into `self.grads`, given d loss / d
        prediction."""
        d = d_pred
        sm = self.softmax
        if self.has_softmax:  # softmax s: ds -> s * (ds - sum(ds * s))
            s = outputs[-1][sm]
            d[sm] = s * (d[sm] - (d[sm] * s).sum(-1, keepdim=True))
        for i in reversed(range(len(outputs))):
            h_in = outputs[i - 1] if i > 0 else x.expand(len(self.specs), *x.shape)
            torch.bmm(h_in.transpose(1, 2), d, out=self.grads[2 * i])
            torch.sum(d, dim=1, keepdim=True, out=self.grads[2 * i + 1])
            if i > 0:
                d = torch.bmm(d, self.params[2 * i].transpose(1, 2))
                a = outputs[i - 1]
                # In place: each element's gradient depends only on itself and its activation.
                for name, members in self.activations:
                    HIDDEN_ACTIVATIONS[name][1](d[members], a[members])

    def losses(self, x: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
        """Per-member MSE over all of x, shape (members,)."""
        total = torch.zeros(len(self.specs), device=x.device)
        for start in range(0, len(x), batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            total += (self.forward(xb)[-1] - yb).pow(2).mean(dim=(1, 2)) * len(xb)
        return total / len(x)


class _Grid:
    """The members still training: every weight in one flat tensor (and the gradients in
    another) that the groups view. Adam is elementwise, so one fused step over the flat
    tensor updates each member exactly as its own optimizer would. Members that have
    stopped are dropped, weights, gradients and Adam state, so that they cost nothing."""

    def __init__(
        self, groups: list[_Group], weights: list[torch.Tensor], lr: float, device: torch.device
    ):
        self.flat = torch.cat([w.reshape(-1) for w in weights]).to(device)
        self.place = torch.arange(
            len(self.flat), device=device
        )  # each weight's index in the whole grid's layout
        self.lr, self.device = lr, device
        self.optimizer = torch.optim.Adam([self.flat], lr=lr, fused=True)
        self._bind(groups)

    def _bind(self, groups: list[_Group]) -> None:
        self.groups = groups
        self.flat.grad = torch.zeros_like(self.flat)
        offset, owner = 0, []
        for g in groups:
            g.params, g.grads = [], []
            for shape in g.shapes:
                n = math.prod(shape)
                g.params.append(self.flat[offset : offset + n].view(shape))
                g.grads.append(self.flat.grad[offset : offset + n].view(shape))
                owner.append(torch.tensor(g.ids).repeat_interleave(n // len(g.ids)))
                offset += n
        self.owner = torch.cat(owner).to(self.device)  # each weight's member

    def drop(self, active: torch.Tensor) -> None:
        """Keep only the members where `active` (indexed by member) is true."""
        keep = active[self.owner]
        state = self.optimizer.state[self.flat]
        # A member's elements are contiguous within each stacked tensor, so selecting
        # elements in order leaves each group's tensors stacked over its remaining members.
        self.flat, self.place = self.flat[keep], self.place[keep]
        self.optimizer = torch.optim.Adam([self.flat], lr=self.lr, fused=True)
        if state:
            self.optimizer.state[self.flat] = {
                "step": state["step"],
                "exp_avg": state["exp_avg"][keep],
                "exp_avg_sq": state["exp_avg_sq"][keep],
            }
        flags = active.tolist()
        self._bind([s for s in (g.subset(flags) for g in self.groups) if s is not None])

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        scale = 2.0 / (len(x) * y.shape[1])  # d mean((p - y)^2) / d p
        for g in self.groups:
            outputs = g.forward(x)
            g.backward(x, outputs, (outputs[-1] - y).mul_(scale))
        self.optimizer.step()


def fit_predictor_grid(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    specs: list[PredictorSpec] | None = None,
    config: PredictorConfig | None = None,
    progress: bool = False,
) -> list[FittedPredictor]:
    """Train every predictor in `specs` (default: the whole grid) with MSE, Adam and
    early stopping on validation loss; return each at its best validation epoch. With
    `progress`, a bar on a terminal counts the epochs with the best validation loss so far."""
    config = config or PredictorConfig()
    config.validate()
    specs = list(specs) if specs is not None else predictor_grid()
    if len(train_x) < 1 or len(val_x) < 1:
        raise ConfigError(
            f"need training and validation embeddings, got {len(train_x)} and {len(val_x)}"
        )
    for name, x, y in (("training", train_x, train_y), ("validation", val_x, val_y)):
        if len(x) != len(y):
            raise ConfigError(
                f"{len(x)} {name} embeddings but {len(y)} {name} targets; they must pair up"
            )
        for what, array in (("embeddings", x), ("targets", y)):
            if not np.isfinite(np.asarray(array, np.float32)).all():
                raise ConfigError(
                    f"the {name} {what} hold NaN or inf values; check the autoencoder and the data"
                )
    t0 = time.perf_counter()
    device = resolve_device(config.device)
    tx = torch.as_tensor(np.asarray(train_x, np.float32), device=device)
    ty = torch.as_tensor(np.asarray(train_y, np.float32), device=device).reshape(len(tx), -1)
    vx = torch.as_tensor(np.asarray(val_x, np.float32), device=device)
    vy = torch.as_tensor(np.asarray(val_y, np.float32), device=device).reshape(len(vx), -1)
    layouts: dict[tuple[int, ...], list[int]] = {}
    for i in sorted(range(len(specs)), key=lambda i: _member_order(specs[i])):
        layouts.setdefault(specs[i].hidden, []).append(i)
    groups = [
        _Group([specs[i] for i in ids], ids, tx.shape[1], ty.shape[1]) for ids in layouts.values()
    ]
    initial = [w for g in groups for w in g.initial_weights(config.seed)]
    grid = _Grid(groups, initial, config.lr, device)
    best = grid.flat.clone()  # every member's weights at its best epoch, in the whole grid's layout
    generator = torch.Generator().manual_seed(config.seed)

    m = len(specs)
    best_val = torch.full((m,), math.inf, device=device)
    best_epoch = torch.zeros(m, dtype=torch.long, device=device)
    bad = torch.zeros(m, dtype=torch.long, device=device)
    epochs_run = torch.zeros(m, dtype=torch.long, device=device)
    patience = config.effective_patience
    bar = progress_bar(
        total=config.epochs,
        desc="predictor grid",
        unit="epoch",
        leave=False,
        disable=None if progress else True,  # None: on a terminal only, not in a CI log
    )
    with torch.no_grad(), bar:
        for epoch in range(1, config.epochs + 1):
            active = bad < patience
            perm = torch.randperm(len(tx), generator=generator).to(device)
            for start in range(0, len(tx), config.batch_size):
                idx = perm[start : start + config.batch_size]
                grid.train_step(tx[idx], ty[idx])
            val = torch.full((m,), math.inf, device=device)
            for g in grid.groups:
                val[g.ids] = g.losses(vx, vy, config.batch_size * 8)
            epochs_run += active.long()
            improved = (val < best_val) & active
            best_val = torch.where(improved, val, best_val)
            best_epoch = torch.where(improved, torch.full_like(best_epoch, epoch), best_epoch)
            bad = torch.where(improved, torch.zeros_like(bad), bad + active.long())
            chosen = improved[grid.owner]
            best[grid.place[chosen]] = grid.flat[chosen]
            still = bad < patience
            bar.update(1)
            if not bar.disable:
                bar.set_postfix(best_val=f"{best_val.min().item():.4g}", training=int(still.sum()))
            if not bool(still.any()):
                break
            if not bool(still.eq(active).all()):
                grid.drop(still)
    seconds = time.perf_counter() - t0
    bv, be, er = best_val.cpu().tolist(), best_epoch.cpu().tolist(), epochs_run.cpu().tolist()
    best = best.cpu()
    results: list[FittedPredictor | None] = [None] * m
    offset = 0
    for g in groups:
        stacked = []
        for shape in g.shapes:
            stacked.append(best[offset : offset + math.prod(shape)].view(shape))
            offset += math.prod(shape)
        for j, (spec, i) in enumerate(zip(g.specs, g.ids)):
            results[i] = FittedPredictor(
                spec, [w[j].clone() for w in stacked], bv[i], be[i], er[i], seconds
            )
    return results  # type: ignore[return-value]


# What the grid holds per weight of its members' first layers: the weight, its gradient, Adam's
# two moments, the best epoch's copy, its place and owner (int64), and the batched matmuls'
# products (measured on a CPU: 185 KB per embedding dimension for the 38 predictors).
BYTES_PER_FIRST_LAYER_WEIGHT = 64


def grid_memory_bytes(rows: int, dims: int, outputs: int, specs=None) -> int:
    """About the peak memory of the grid on `rows` embeddings of `dims` dimensions."""
    specs = specs if specs is not None else predictor_grid()
    first = sum(s.hidden[0] if s.hidden else outputs for s in specs)
    return BYTES_PER_FIRST_LAYER_WEIGHT * dims * first + 12 * rows * dims + (512 << 20)
