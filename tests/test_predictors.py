"""The predictor grid: the paper's 38 predictors, fitted together without members
mixing, each with its own early stopping, returned at its best epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from percae.config import ConfigError
from percae.predictors import (
    FittedPredictor,
    PredictorConfig,
    PredictorSpec,
    fit_predictor_grid,
    predictor_grid,
    select_best,
)

LINEAR_CONFIG = PredictorConfig(
    epochs=60, batch_size=64, lr=2e-2, patience=10, seed=3, device="cpu"
)


def paper_grid():
    """The paper's rule written out: 1 or 2 hidden layers of 32/64/128 units, the second no
    larger than the first, ReLU or sigmoid, no or softmax output; and linear with no or softmax
    output."""
    out = set()
    sizes = [32, 64, 128]
    layouts = [(a,) for a in sizes]
    for a in sizes:
        for b in sizes:
            if b <= a:
                layouts.append((a, b))
    for layout in layouts:
        for act in ("relu", "sigmoid"):
            for final in ("none", "softmax"):
                out.add((layout, act, final))
    for final in ("none", "softmax"):
        out.add(((), None, final))
    return out


def test_grid_is_the_papers_search_space():
    grid = predictor_grid()
    assert len(grid) == 38
    assert sum(s.kind == "mlp" for s in grid) == 36 and sum(s.kind == "linear" for s in grid) == 2
    assert {(s.hidden, s.hidden_activation, s.output_activation) for s in grid} == paper_grid()
    assert len({s.name for s in grid}) == 38
    for s in grid:
        if len(s.hidden) == 2:
            assert s.hidden[1] <= s.hidden[0]
        assert PredictorSpec.from_dict(s.to_dict()) == s


@pytest.fixture(scope="module")
def linear_problem():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 2))
    x = rng.normal(size=(320, 6)).astype(np.float32)
    y = (x @ A).astype(np.float32)
    return x[:256], y[:256], x[256:], y[256:]


@pytest.fixture(scope="module")
def fitted_grid(linear_problem):
    return fit_predictor_grid(*linear_problem, config=LINEAR_CONFIG)


@pytest.mark.slow
def test_results_follow_the_order_of_the_specs(fitted_grid):
    assert [f.spec for f in fitted_grid] == predictor_grid()


def test_linear_predictor_solves_a_linear_problem(linear_problem, fitted_grid):
    _, _, vx, vy = linear_problem
    linear = next(f for f in fitted_grid if f.spec == PredictorSpec((), None, "none"))
    assert linear.val_loss < 0.01 * vy.var()
    # Its weights approach the true map A (recovered here by least squares).
    A = np.linalg.lstsq(vx, vy, rcond=None)[0]
    assert np.linalg.norm(linear.weights[0].numpy() - A) < 0.15 * np.linalg.norm(A)
    assert select_best(fitted_grid, "linear") is linear


def test_predict_reproduces_the_validation_loss(linear_problem, fitted_grid):
    _, _, vx, vy = linear_problem
    for f in fitted_grid:
        pred = f.predict(vx)
        assert pred.shape == vy.shape
        manual = np.mean((pred.astype(np.float64) - vy) ** 2)
        # abs: the linear member's loss is ~1e-8, where float32 summation order shows.
        assert manual == pytest.approx(f.val_loss, rel=1e-4, abs=1e-7 * float(vy.var())), (
            f.spec.name
        )
        if f.spec.output_activation == "softmax":
            np.testing.assert_allclose(pred.sum(axis=1), 1.0, rtol=1e-5)
    # Each predictor's weights have its own layout: (in, hidden..., out).
    for f in fitted_grid:
        sizes = [6, *f.spec.hidden, 2]
        assert [tuple(w.shape) for w in f.weights[0::2]] == list(zip(sizes[:-1], sizes[1:]))


@pytest.mark.slow
def test_fitting_one_alone_equals_fitting_it_in_the_grid(linear_problem, fitted_grid):
    """Members neither share weights, gradients nor stopping: alone, each one ends exactly as in the
    grid. Checked on members that stopped early inside the grid and on ones that ran all epochs."""
    stopped = [f for f in fitted_grid if f.epochs_run < LINEAR_CONFIG.epochs]
    full = [f for f in fitted_grid if f.epochs_run == LINEAR_CONFIG.epochs and f.spec.kind == "mlp"]
    assert len(stopped) >= 2 and full, (
        "test setup: want members that stopped early and ones that did not"
    )
    linear = next(f for f in fitted_grid if f.spec == PredictorSpec((), None, "none"))
    for inside in [stopped[0], stopped[-1], full[0], linear]:
        alone = fit_predictor_grid(*linear_problem, specs=[inside.spec], config=LINEAR_CONFIG)
        assert len(alone) == 1 and alone[0].spec == inside.spec
        # abs: the linear member's loss is ~1e-8, where float32 summation order shows (as above).
        vy = linear_problem[3]
        assert alone[0].val_loss == pytest.approx(
            inside.val_loss, rel=1e-4, abs=1e-7 * float(vy.var())
        ), inside.spec.name
        assert alone[0].best_epoch == inside.best_epoch, inside.spec.name
        assert alone[0].epochs_run == inside.epochs_run, inside.spec.name
        for a, b in zip(alone[0].weights, inside.weights):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def reference_fit(spec, initial, x, y, vx, vy, config):
    """The textbook way, independent of percae's code: nn.Sequential, autograd and
    torch.optim.Adam, same initial weights and same batches; the best validation epoch kept."""
    from torch import nn

    layers = []
    for i in range(len(initial) // 2):
        w, b = initial[2 * i], initial[2 * i + 1]
        lin = nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(w.T)
            lin.bias.copy_(b.reshape(-1))
        layers.append(lin)
        if i < len(initial) // 2 - 1:
            layers.append(nn.ReLU() if spec.hidden_activation == "relu" else nn.Sigmoid())
    if spec.output_activation == "softmax":
        layers.append(nn.Softmax(dim=-1))
    net = nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    x, y, vx, vy = map(torch.from_numpy, (x, y, vx, vy))
    generator = torch.Generator().manual_seed(config.seed)
    best, best_state = math.inf, None
    for _ in range(config.epochs):
        perm = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), config.batch_size):
            idx = perm[start : start + config.batch_size]
            loss = nn.functional.mse_loss(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val = nn.functional.mse_loss(net(vx), vy).item()
        if val < best:
            best, best_state = val, [p.detach().clone() for p in net.parameters()]
    return best, best_state


@pytest.mark.slow
def test_grid_members_train_exactly_like_a_textbook_network():
    """The grid's written-out forward/backward and flat Adam give, for each kind of member,
    the weights that autograd and torch.optim.Adam give for the same network."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(5, 3))).astype(np.float32)
    y = np.exp(y) / np.exp(y).sum(axis=1, keepdims=True)  # reachable by softmax members too
    tx, ty, vx, vy = x[:220], y[:220], x[220:], y[220:]
    config = PredictorConfig(epochs=12, batch_size=64, lr=5e-3, patience=1000, seed=7, device="cpu")
    # lr=0 and one epoch: Adam moves nothing, so the best epoch's weights are the initial ones.
    initial = fit_predictor_grid(
        tx,
        ty,
        vx,
        vy,
        config=PredictorConfig(epochs=1, batch_size=64, lr=0.0, seed=7, device="cpu"),
    )
    fitted = fit_predictor_grid(tx, ty, vx, vy, config=config)
    chosen = [
        PredictorSpec((64, 32), "relu", "softmax"),
        PredictorSpec((32,), "sigmoid", "none"),
        PredictorSpec((128, 128), "sigmoid", "softmax"),
        PredictorSpec((), None, "softmax"),
    ]
    by_spec = {f.spec: f for f in fitted}
    start = {f.spec: f for f in initial}
    for spec in chosen:
        val, state = reference_fit(spec, start[spec].weights, tx, ty, vx, vy, config)
        assert by_spec[spec].val_loss == pytest.approx(val, rel=1e-4), spec.name
        ours = by_spec[spec].weights
        for i in range(len(ours) // 2):
            torch.testing.assert_close(ours[2 * i], state[2 * i].T, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(
                ours[2 * i + 1].reshape(-1), state[2 * i + 1], rtol=1e-4, atol=1e-5
            )
    # It did train: the chosen members moved away from their initial weights.
    assert all(not torch.allclose(by_spec[s].weights[0], start[s].weights[0]) for s in chosen)


def test_early_stopping_on_targets_that_cannot_be_learned():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, 16)).astype(np.float32)
    y = rng.normal(size=(96, 2)).astype(np.float32)  # independent of x
    config = PredictorConfig(epochs=200, batch_size=16, lr=1e-2, patience=2, seed=0, device="cpu")
    fitted = fit_predictor_grid(x[:48], y[:48], x[48:], y[48:], config=config)
    for f in fitted:
        assert f.epochs_run < 50, f.spec.name
        # Stopped exactly `patience` epochs after its best one.
        assert f.epochs_run == f.best_epoch + 2, f.spec.name
        manual = np.mean((f.predict(x[48:]).astype(np.float64) - y[48:]) ** 2)
        assert manual == pytest.approx(f.val_loss, rel=1e-4)


def test_patience_defaults_like_the_study():
    assert PredictorConfig(epochs=500).effective_patience == 25
    assert PredictorConfig(epochs=100).effective_patience == 10
    assert PredictorConfig(epochs=100, patience=3).effective_patience == 3


def test_fit_refuses_empty_inputs():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ConfigError):
        fit_predictor_grid(
            x[:0], x[:0, :1], x, x[:, :1], config=PredictorConfig(epochs=1, device="cpu")
        )


def fake(spec, val_loss):
    return FittedPredictor(spec, [], val_loss, best_epoch=1, epochs_run=1)


def test_select_best_takes_the_lowest_loss_of_the_kind():
    mlp_a = fake(PredictorSpec((32,), "relu", "none"), 0.5)
    mlp_b = fake(PredictorSpec((64,), "sigmoid", "none"), 0.2)
    mlp_nan = fake(PredictorSpec((64,), "relu", "none"), math.nan)
    lin_a = fake(PredictorSpec((), None, "none"), 0.1)
    lin_b = fake(PredictorSpec((), None, "softmax"), 0.05)
    fitted = [mlp_a, mlp_nan, lin_a, mlp_b, lin_b]
    assert select_best(fitted, "mlp") is mlp_b  # not the overall best, which is linear
    assert select_best(fitted, "linear") is lin_b
    with pytest.raises(ValueError):
        select_best([mlp_a], "linear")
    with pytest.raises(ValueError):
        select_best([fake(PredictorSpec((32,), "relu", "none"), math.inf)], "mlp")


def test_position_targets_are_standardised_by_one_scale_for_both_axes(tmp_path, monkeypatch):
    """The grid is selected on its validation MSE; with one scale for x and y that MSE is the
    mean squared Euclidean error over a constant, the error that is reported (per-axis scales
    would weigh the axis that varies less more)."""
    from percae import predictors
    from percae.layout import RunFiles

    g = np.random.default_rng(0)
    y = np.stack([g.normal(30, 10, 40), g.normal(20, 1, 40)], axis=1).astype(
        np.float32
    )  # x varies 10x more
    x = g.normal(size=(40, 4)).astype(np.float32)
    seen = {}

    def capture(train_x, train_y, val_x, val_y, specs=None, config=None, progress=False):
        seen["train"], seen["val"] = train_y, val_y
        return real(train_x, train_y, val_x, val_y, specs, config)

    from percae.predictors import evaluate

    real = evaluate.fit_predictor_grid
    monkeypatch.setattr(evaluate, "fit_predictor_grid", capture)
    predictors.fit_predictors(
        "position",
        x[:30],
        y[:30],
        x[30:],
        y[30:],
        x[30:],
        y[30:],
        PredictorConfig(epochs=2, device="cpu"),
        RunFiles(tmp_path),
    )
    standardised, val = seen["train"], seen["val"]
    # Differences keep their proportions: one divisor for both axes ...
    ratio = (val - standardised.mean(0)) / (y[30:] - y[:30].mean(0))
    assert ratio[:, 0] == pytest.approx(ratio[:, 1], rel=1e-4)
    # ... the one that gives the standardised positions unit variance averaged over the axes.
    assert standardised.var(0).mean() == pytest.approx(1.0, rel=1e-4)
    assert standardised.var(0)[0] == pytest.approx(100 * standardised.var(0)[1], rel=0.5)


def test_a_new_hidden_activation_is_one_entry_and_trains_like_a_textbook_network(monkeypatch):
    """tanh, added to the grid's table alone (in place forward, gradient from its output), in a
    grid of three activations with and without softmax: each member's weights are autograd's."""
    from percae.predictors import grid

    monkeypatch.setitem(
        grid.HIDDEN_ACTIVATIONS, "tanh", (torch.Tensor.tanh_, lambda d, a: d.mul_(1 - a * a))
    )
    rng = np.random.default_rng(6)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(4, 2))).astype(np.float32)
    tx, ty, vx, vy = x[:150], y[:150], x[150:], y[150:]
    specs = [
        PredictorSpec((16,), act, out)
        for act in ("tanh", "relu", "sigmoid")
        for out in ("none", "softmax")
    ]
    config = PredictorConfig(epochs=6, batch_size=32, lr=5e-3, patience=1000, seed=2, device="cpu")
    start = fit_predictor_grid(
        tx, ty, vx, vy, specs=specs,
        config=PredictorConfig(epochs=1, batch_size=32, lr=0.0, seed=2, device="cpu"),
    )  # fmt: skip
    fitted = fit_predictor_grid(tx, ty, vx, vy, specs=specs, config=config)
    for spec, first, ours in zip(specs, start, fitted):
        from torch import nn

        layers = [nn.Linear(4, 16), {"tanh": nn.Tanh(), "relu": nn.ReLU(), "sigmoid": nn.Sigmoid()}[
            spec.hidden_activation], nn.Linear(16, 2)]  # fmt: skip
        net = nn.Sequential(
            *layers, *([nn.Softmax(dim=-1)] if spec.output_activation == "softmax" else [])
        )
        with torch.no_grad():
            for lin, (w, b) in zip((net[0], net[2]), zip(first.weights[::2], first.weights[1::2])):
                lin.weight.copy_(w.T), lin.bias.copy_(b.reshape(-1))
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        generator = torch.Generator().manual_seed(config.seed)
        best = math.inf
        for _ in range(config.epochs):
            perm = torch.randperm(len(tx), generator=generator)
            for s in range(0, len(tx), config.batch_size):
                idx = perm[s : s + config.batch_size]
                loss = nn.functional.mse_loss(
                    net(torch.from_numpy(tx)[idx]), torch.from_numpy(ty)[idx]
                )
                opt.zero_grad(), loss.backward(), opt.step()
            with torch.no_grad():
                best = min(
                    best,
                    nn.functional.mse_loss(net(torch.from_numpy(vx)), torch.from_numpy(vy)).item(),
                )
        assert ours.val_loss == pytest.approx(best, rel=1e-4), spec.name
    with pytest.raises(ConfigError, match="hidden activation 'swish'"):
        PredictorSpec((16,), "swish", "none")
