"""Autoencoder training: it learns, keeps the best validation epoch, stops early, resumes
an interrupted run exactly, leaves the perceptual network untouched, and decoder
retraining moves the decoder alone."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from percae.config import ConfigError
from percae.loss import PerceptualLoss, PixelLoss
from percae.model import AutoencoderConfig, build_autoencoder, load_autoencoder, load_tensors
from percae.device import DeviceImages, to_float_batch
from percae.training import Objective, TrainConfig, evaluate_loss, train_autoencoder

EPOCH_LINE = re.compile(r"^epoch\s+(\d+)/")


def make(kind="ae", z=4, seed=0):
    torch.manual_seed(seed)
    return build_autoencoder(AutoencoderConfig(kind=kind, latent_dim=z, image_size=64))


def cfg(**kw):
    # float32 throughout (no bf16 autocast, which CPUs with AVX512-BF16 would use), so that
    # losses can be compared exactly with float32 recomputations.
    base = dict(epochs=3, batch_size=8, lr=3e-3, patience=10, seed=0, device="cpu", amp=False)
    base.update(kw)
    return TrainConfig(**base)


def state_copy(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class Snapshots:
    """A `log` callback that keeps the model's weights as they are when each epoch is logged."""

    def __init__(self, model):
        self.model, self.states, self.lines = model, {}, []

    def __call__(self, line):
        self.lines.append(line)
        m = EPOCH_LINE.match(line)
        if m:
            self.states[int(m.group(1))] = state_copy(self.model)


class WorseWhenEvaluated(nn.Module):
    """MSE while training; minus MSE when evaluated (no autograd), so that validation
    gets worse exactly as the model learns: the best epoch is an early one."""

    name = "worse-when-evaluated"

    def forward(self, reconstruction, target):
        mse = F.mse_loss(reconstruction, target)
        return mse if torch.is_grad_enabled() else -mse


class CountingNetwork(nn.Module):
    """A small perceptual network that counts the images it sees, separately for images seen
    with and without autograd. Pooling and per-channel scaling only: each image's features
    are the same to the bit whatever batch it is in (a convolution's may differ in the last
    bits with the batch), so runs that compute them in different batches can be compared
    exactly."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.scale = nn.Parameter(torch.randn(1, 3, 1, 1) * 4)
        self.shift = nn.Parameter(torch.randn(1, 3, 1, 1))
        self.seen = {"grad": 0, "no_grad": 0}

    def forward(self, x):
        self.seen["grad" if torch.is_grad_enabled() else "no_grad"] += len(x)
        return F.avg_pool2d(x, 4) * self.scale + self.shift


@pytest.fixture
def small(tiny_images):
    import numpy as np

    return tiny_images.subset(np.arange(24)), tiny_images.subset(np.arange(48, 56))


def test_to_float_batch():
    b = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8)  # (1, 1, 1, 3)
    x = to_float_batch(b)
    assert x.shape == (1, 3, 1, 1)
    assert torch.allclose(x.flatten(), torch.tensor([0.0, 128 / 255, 1.0]))
    tiled = to_float_batch(torch.arange(12, dtype=torch.uint8).view(1, 2, 2, 3), tile=2)
    assert tiled.shape == (1, 3, 4, 4)
    assert torch.equal(tiled[..., :2, :2], tiled[..., 2:, 2:])


@pytest.mark.slow
def test_loss_decreases_and_the_best_epoch_is_kept(tiny_split):
    train, val = tiny_split
    model = make()
    snaps = Snapshots(model)
    result = train_autoencoder(
        model,
        train,
        val,
        cfg(epochs=3, batch_size=16),
        progress=False,
        log=snaps,
        loss_fn=PixelLoss(),
    )
    h = result.history
    assert [r["epoch"] for r in h] == [1, 2, 3] and result.epochs_run == 3
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    vals = [r["val_loss"] for r in h]
    assert result.best_val_loss == min(vals)
    assert result.best_epoch == 1 + vals.index(min(vals))
    # The model ends with the best epoch's weights, and they score the recorded loss.
    assert_same_state(state_copy(model), snaps.states[result.best_epoch])
    assert not model.training
    again = evaluate_loss(
        Objective(model, PixelLoss(), 0.0, False),
        DeviceImages(val, torch.device("cpu")),
        batch_size=5,
        amp=False,
    )
    assert again == pytest.approx(result.best_val_loss, rel=1e-5)
    # The recorded validation loss is the plain mean squared error over the validation images.
    x = to_float_batch(torch.from_numpy(val.materialize()))
    with torch.no_grad():
        manual = ((model(x).reconstruction.double() - x.double()) ** 2).mean().item()
    assert manual == pytest.approx(result.best_val_loss, rel=1e-4)


def test_best_epoch_is_restored_when_later_epochs_are_worse(small):
    train, val = small
    model = make()
    snaps = Snapshots(model)
    result = train_autoencoder(
        model, train, val, cfg(epochs=3), progress=False, log=snaps, loss_fn=WorseWhenEvaluated()
    )
    assert result.best_epoch < 3, "test setup: validation should get worse while training"
    assert_same_state(state_copy(model), snaps.states[result.best_epoch])
    last = snaps.states[3]
    assert any(not torch.equal(last[k], v) for k, v in model.state_dict().items())
    again = evaluate_loss(
        Objective(model, WorseWhenEvaluated(), 0.0, False),
        DeviceImages(val, torch.device("cpu")),
        batch_size=8,
        amp=False,
    )
    assert again == pytest.approx(result.best_val_loss, rel=1e-5)


def test_early_stopping(small):
    train, val = small
    result = train_autoencoder(
        make(),
        train,
        val,
        cfg(epochs=6, patience=1),
        progress=False,
        log=None,
        loss_fn=WorseWhenEvaluated(),
    )
    assert result.epochs_run < 6
    assert result.epochs_run == result.best_epoch + 1
    assert len(result.history) == result.epochs_run


def read_history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def loss_named(name):
    if name == "pixel":
        return PixelLoss()
    # With convolutions, whose results may differ in the last bits with the batch: the cached
    # target features must be computed in the same batches on resume as in the whole run.
    torch.manual_seed(4)
    return PerceptualLoss(
        nn.Sequential(nn.Conv2d(3, 6, 5, stride=4), nn.ReLU(), nn.Conv2d(6, 6, 3)), cpu_chunk=None
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind,loss", [("ae", "pixel"), ("vae", "pixel"), ("ae", "perceptual")])
def test_interrupted_run_resumes_exactly(kind, loss, small, tmp_path):
    train, val = small
    config = cfg(
        epochs=3, batch_size=5
    )  # 24 = 4 x 5 + 4: a smaller last batch, different images each epoch

    whole_dir = tmp_path / "whole"
    whole = make(kind)
    r_whole = train_autoencoder(
        whole,
        train,
        val,
        config,
        run_dir=whole_dir,
        progress=False,
        log=None,
        loss_fn=loss_named(loss),
    )

    run_dir = tmp_path / "interrupted"

    def interrupt_at_epoch_2(line):
        m = EPOCH_LINE.match(line)
        if m and int(m.group(1)) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(
            make(kind),
            train,
            val,
            config,
            run_dir=run_dir,
            progress=False,
            log=interrupt_at_epoch_2,
            loss_fn=loss_named(loss),
        )
    # The interruption leaves a checkpoint (plain tensors) and the history of the epochs it holds.
    checkpoint = run_dir / "checkpoint.pt"
    assert checkpoint.exists()
    ck = torch.load(checkpoint, weights_only=True)
    done = len(ck["history"])
    assert 1 <= done <= 2
    assert len(read_history(run_dir / "history.csv")) == done
    assert not (run_dir / "model.safetensors").exists()

    resumed = make(kind)
    lines = []
    r_resumed = train_autoencoder(
        resumed,
        train,
        val,
        config,
        run_dir=run_dir,
        progress=False,
        log=lines.append,
        loss_fn=loss_named(loss),
    )
    assert any("resum" in line for line in lines)
    assert sum(bool(EPOCH_LINE.match(line)) for line in lines) == 3 - done  # it did not start over

    assert_same_state(state_copy(whole), state_copy(resumed))
    assert r_resumed.best_epoch == r_whole.best_epoch
    assert r_resumed.best_val_loss == r_whole.best_val_loss
    assert [r["val_loss"] for r in r_resumed.history] == [r["val_loss"] for r in r_whole.history]

    # The finished run folder: weights, configs, history; the checkpoint is gone.
    for d in (whole_dir, run_dir):
        assert (
            (d / "model.safetensors").exists()
            and (d / "train_config.json").exists()
            and (d / "train_result.json").exists()
        )
        assert not (d / "checkpoint.pt").exists()
        rows = read_history(d / "history.csv")
        assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
        saved = TrainConfig.load(d / "train_config.json")
        if (
            loss == "perceptual"
        ):  # "auto" is saved as the number it was calibrated to, the same for both
            assert isinstance(saved.perceptual_scale, float) and saved.perceptual_scale > 1
            # A loss passed in is recorded by what it is, not by the config's pixel default.
            assert (saved.loss, saved.perceptual_net) == ("perceptual", "a network of one's own")
            saved = replace(
                saved,
                perceptual_scale=config.perceptual_scale,
                loss=config.loss,
                perceptual_net=config.perceptual_net,
            )
        assert (
            saved.data_fingerprint == f"{train.fingerprint()}-{val.fingerprint()}"
        )  # (the images, recorded)
        assert replace(saved, data_fingerprint=None) == config
        assert json.loads((d / "train_result.json").read_text())["best_epoch"] == r_whole.best_epoch
    rows = read_history(run_dir / "history.csv")
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(
        [r["val_loss"] for r in r_whole.history], rel=1e-12
    )
    assert_same_state(state_copy(load_autoencoder(run_dir)), state_copy(whole))


@pytest.mark.slow
def test_perceptual_training_leaves_the_network_untouched(small, tmp_path):
    train, val = small
    # A network with BatchNorm, whose running statistics would move in train mode (the
    # built-in networks have none left: EfficientNet's are folded into its convolutions).
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3)
    )
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    loss = PerceptualLoss(net, name="custom")
    before = state_copy(net)
    modes = []
    net.register_forward_pre_hook(
        lambda m, args: modes.append(any(x.training for x in m.modules()))
    )

    model = make()
    model_before = state_copy(model)
    train_autoencoder(
        model, train, val, cfg(epochs=2), run_dir=tmp_path, progress=False, log=None, loss_fn=loss
    )

    assert modes and not any(modes)  # eval mode at every call, in training and validation alike
    assert_same_state(before, state_copy(net))
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())
    assert not net.training
    # The autoencoder itself did train, and its saved state holds nothing of the network.
    assert any(not torch.equal(model_before[k], v) for k, v in model.state_dict().items())
    saved = load_tensors(tmp_path / "model.safetensors")
    assert set(saved) == set(make().state_dict())
    assert set(model.state_dict()) == set(make().state_dict())


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_decoder_retraining_moves_only_the_decoder(kind, small):
    train, val = small
    model = make(kind)
    # Non-default encoder statistics, so that any BatchNorm update would show.
    for m in model.encoder.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    before = state_copy(model)
    result = train_autoencoder(
        model,
        train,
        val,
        cfg(epochs=2),
        progress=False,
        log=None,
        freeze_encoder=True,
        loss_fn=PixelLoss(),
    )
    after = state_copy(model)
    frozen = [k for k in before if not k.startswith(("decoder_input.", "decoder_body."))]
    assert any(k.startswith("encoder.") and "running_var" in k for k in frozen)
    assert any(k.startswith("mu.") for k in frozen)
    for k in frozen:
        assert torch.equal(before[k], after[k]), k
    decoder_weights = [
        k
        for k in before
        if k.startswith(("decoder_input.", "decoder_body.")) and k.endswith("weight")
    ]
    assert decoder_weights and all(not torch.equal(before[k], after[k]) for k in decoder_weights)
    assert result.epochs_run == 2


def test_training_refuses_mismatched_or_tiny_data(tiny_images):
    import numpy as np

    model = build_autoencoder(AutoencoderConfig(image_size=80))
    with pytest.raises(ConfigError, match="80"):
        train_autoencoder(
            model, tiny_images, tiny_images, cfg(), progress=False, log=None, loss_fn=PixelLoss()
        )
    with pytest.raises(ConfigError):
        train_autoencoder(
            make(),
            tiny_images.subset(np.arange(1)),
            tiny_images,
            cfg(),
            progress=False,
            log=None,
            loss_fn=PixelLoss(),
        )
    with pytest.raises(ConfigError):
        train_autoencoder(
            make(),
            tiny_images,
            tiny_images,
            cfg(epochs=0),
            progress=False,
            log=None,
            loss_fn=PixelLoss(),
        )


@pytest.mark.parametrize(
    "cpu_chunk", [None, 4]
)  # 4: the CPU's chunked, recomputed reconstruction features
@pytest.mark.slow
def test_target_features_are_computed_once_per_image_and_training_is_unchanged(
    cpu_chunk, tiny_images
):
    # 25 training images at batch 8: 25 % 8 == 1, so each epoch leaves one image out
    # (BatchNorm cannot train on a batch of one), a different one each time.
    train, val = tiny_images.subset(np.arange(25)), tiny_images.subset(np.arange(48, 58))
    histories, states, nets = [], [], []
    for cache_mb in (0, 64, None):  # None: the default, which on a CPU keeps nothing
        net = CountingNetwork()
        model = make()
        result = train_autoencoder(
            model,
            train,
            val,
            cfg(epochs=4, feature_cache_mb=cache_mb, perceptual_scale=1.0),  # (no calibration pass)
            progress=False,
            log=None,
            loss_fn=PerceptualLoss(net, cpu_chunk=cpu_chunk),
        )
        histories.append([(r["train_loss"], r["val_loss"]) for r in result.history])
        states.append(state_copy(model))
        nets.append(net)
    recomputed, cached, default = nets
    assert default.seen == recomputed.seen
    epochs, n_train, n_val = 4, 24, 10  # 24 training images per epoch
    # Recomputing: every epoch, each training and validation image once without autograd
    # (its target features) and each validation reconstruction as well.
    assert recomputed.seen["no_grad"] == epochs * (n_train + 2 * n_val)
    # Cached: the target features of all 25 training and 10 validation images once in the
    # whole run, then only the reconstructions.
    assert cached.seen["no_grad"] == 25 + n_val + epochs * n_val
    # Training reconstructions: once per epoch (twice where chunks are recomputed in backward).
    assert (
        cached.seen["grad"]
        == recomputed.seen["grad"]
        == epochs * n_train * (1 if cpu_chunk is None else 2)
    )
    # ...and the run is the same run, to the bit.
    assert histories[1] == histories[0] == histories[2]
    assert_same_state(states[1], states[0])


def test_feature_cache_keeps_nothing_beyond_its_budget(tiny_images):
    from percae.feature_cache import FeatureCache

    data = DeviceImages(tiny_images.subset(np.arange(16)), torch.device("cpu"))
    loss = PerceptualLoss(CountingNetwork(), cpu_chunk=None)
    per_image = 3 * 16 * 16 * 4  # 3 channels at 16x16, float32
    too_small, exact = FeatureCache(data, 16 * per_image - 1), FeatureCache(data, 16 * per_image)
    for cache in (too_small, exact):
        cache.fill(loss, batch_size=8, amp=False)
    assert too_small.store is None and too_small.nbytes == 0
    assert exact.nbytes == 16 * per_image
    # Stored by position: the features of any batch are those of its images.
    positions = torch.tensor([13, 2, 7])
    with torch.no_grad():
        expected = loss.features(data.batch(positions))
    assert too_small.features(positions) is None
    torch.testing.assert_close(exact.features(positions), expected)


def test_cached_features_are_float32_under_bf16_autocast(tiny_images, monkeypatch):
    from percae import device
    from percae.feature_cache import FeatureCache

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)  # bf16 autocast on any CPU
    data = DeviceImages(tiny_images.subset(np.arange(16)), torch.device("cpu"))
    torch.manual_seed(4)
    loss = PerceptualLoss(nn.Sequential(nn.Conv2d(3, 6, 5, stride=4), nn.ReLU()), cpu_chunk=None)
    cache = FeatureCache(data, 1 << 30)
    cache.fill(loss, batch_size=8, amp=True)
    assert cache.store[0].dtype == torch.float32  # no bf16 rounding of the targets' sigmoid
    positions = torch.arange(8, 16)  # the second batch of the fill
    with torch.no_grad():
        x = data.batch(positions)
        expected = torch.sigmoid(loss.network(x))
    assert torch.equal(cache.features(positions), expected)


def test_validation_features_get_the_budget_the_training_set_leaves(tiny_images, monkeypatch):
    from percae.training import loop

    train, val = tiny_images.subset(np.arange(24)), tiny_images.subset(np.arange(48, 58))
    per_image = 3 * 16 * 16 * 4
    monkeypatch.setattr(
        loop, "feature_cache_bytes", lambda device, mb: 24 * per_image
    )  # training's alone
    net = CountingNetwork()
    train_autoencoder(
        make(),
        train,
        val,
        cfg(epochs=3, perceptual_scale=1.0),
        progress=False,
        log=None,
        loss_fn=PerceptualLoss(net, cpu_chunk=None),
    )
    # Training targets once; nothing left for validation, which computes its targets every
    # epoch, beside the validation reconstructions.
    assert net.seen["no_grad"] == 24 + 3 * 2 * 10


def test_a_training_set_of_whole_batches_plus_one_image_has_a_finite_loss(tiny_images):
    # 25 images at batch 8: the last image is left out (BatchNorm cannot train on a batch of
    # one). An earlier version then trained on an empty batch, and the epoch's loss was nan.
    train, val = tiny_images.subset(np.arange(25)), tiny_images.subset(np.arange(48, 56))
    result = train_autoencoder(
        make(), train, val, cfg(epochs=2), progress=False, log=None, loss_fn=PixelLoss()
    )
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in result.history)


# --- VAE diagnostics ---------------------------------------------------------------------


def test_active_units_count_the_latent_dimensions_whose_mean_varies(tiny_split):
    from percae.loss import kl_divergence
    from percae.training import latent_diagnostics

    _, val = tiny_split
    model = build_autoencoder(AutoencoderConfig("vae", 6, 64), seed=0)
    with torch.no_grad():
        model.mu.weight[:2] = 0  # dimensions 0 and 1: mu is the bias, the same for every image
        # 2 and 3 as initialised: they vary over these similar frames, but far below the 0.01
        # threshold.
        model.mu.weight[4:] *= 1000  # 4 and 5: clearly active
    d = latent_diagnostics(
        model, PixelLoss(), DeviceImages(val, torch.device("cpu")), batch_size=5, amp=False
    )
    model.eval()
    with torch.no_grad():
        x = to_float_batch(torch.from_numpy(val.materialize()))
        h = model.encoder(x)
        mu, logvar = model.mu(h), model.logvar(h)
        variance = mu.var(0, correction=0)
        assert (variance[:4] < 0.01).all() and (
            variance[4:] > 0.01
        ).all()  # the setup is what it says
        assert d["active_units"] == 2
        # KL(N(mu, sigma) || N(0, 1)) per dimension in nats, and the objective's term (twice its
        # mean).
        per_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
        assert d["val_kl_per_dim"] == pytest.approx(per_dim.mean().item(), rel=1e-5)
        assert d["val_kl_term"] == pytest.approx(kl_divergence(mu, logvar).item(), rel=1e-5)
        assert d["val_reconstruction"] == pytest.approx(
            F.mse_loss(model.decode(mu), x).item(), rel=1e-5
        )


@pytest.mark.slow
def test_vae_runs_record_their_diagnostics_every_epoch_and_at_the_best(tiny_split, tmp_path):
    train, val = tiny_split
    model = build_autoencoder(AutoencoderConfig("vae", 4, 64), seed=0)
    result = train_autoencoder(
        model,
        train,
        val,
        TrainConfig(epochs=3, batch_size=16, kl_weight=0.01, device="cpu"),
        run_dir=tmp_path,
        progress=False,
        log=None,
        loss_fn=PixelLoss(),
    )
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert len(rows) == 3 and all(0 <= int(r["active_units"]) <= 4 for r in rows)
    best = rows[result.best_epoch - 1]
    saved = json.loads((tmp_path / "train_result.json").read_text())
    assert saved["active_units"] == int(best["active_units"])
    assert saved["val_kl_term"] == pytest.approx(float(best["val_kl_term"]))
    # The epoch's objective is reconstruction + gamma * KL term (gamma 0.01), both in eval mode on
    # mu.
    assert float(best["val_loss"]) == pytest.approx(
        float(best["val_reconstruction"]) + 0.01 * float(best["val_kl_term"]), rel=1e-4
    )


# --- a diverged run is never saved as a finished one --------------------------------------


class NaNAfter(PixelLoss):
    """Pixel loss that turns NaN from its `after`-th call on."""

    def __init__(self, after: int):
        super().__init__()
        self.calls, self.after = 0, after

    def forward(self, reconstruction, target):
        self.calls += 1
        loss = super().forward(reconstruction, target)
        return loss * float("nan") if self.calls > self.after else loss


@pytest.mark.slow
def test_a_nan_loss_stops_training_and_saves_nothing_as_finished(tiny_split, tmp_path):
    from percae.training import TrainingDiverged

    train, val = tiny_split
    model = build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0)
    # 48 training images at batch 16: 3 calls a training epoch, 1 for validation; NaN from the
    # 6th call on, the second step of epoch 2.
    with pytest.raises(
        TrainingDiverged, match="at step 2 of epoch 2 .*the last good epoch is 1"
    ) as e:
        train_autoencoder(
            model,
            train,
            val,
            TrainConfig(epochs=3, batch_size=16, device="cpu"),
            run_dir=tmp_path,
            progress=False,
            log=None,
            loss_fn=NaNAfter(5),
        )
    assert "\n" not in str(e.value)
    assert str(e.value).startswith(f"{tmp_path} (ae z=4): ")  # which run diverged
    # Nothing kept: not as finished, and no checkpoint that would block the corrected run
    # (a checkpoint resumes only under its own settings) or resume the divergence.
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    fresh = build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0)
    result = train_autoencoder(
        fresh,
        train,
        val,
        TrainConfig(epochs=2, batch_size=16, lr=1e-4, device="cpu"),
        run_dir=tmp_path,
        progress=False,
        log=None,
        loss_fn=PixelLoss(),
    )
    assert (
        result.epochs_run == 2
        and (tmp_path / "train_result.json").exists()
        and not (tmp_path / "checkpoint.pt").exists()
    )


@pytest.mark.slow
def test_inf_in_a_buffer_with_a_finite_loss_is_not_saved_as_finished(tiny_split, tmp_path):
    from percae.training import TrainingDiverged

    train, val = tiny_split
    model = build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0)

    class PoisonBatchNorm(PixelLoss):
        # An inf running variance makes that BatchNorm output 0 in eval mode: validation stays
        # finite.
        def forward(self, reconstruction, target):
            if model.training:
                model.encoder[1].running_var.data.fill_(
                    float("inf")
                )  # .data: autograd saved this tensor
            return super().forward(reconstruction, target)

    with pytest.raises(TrainingDiverged, match="encoder.1.running_var"):
        train_autoencoder(
            model,
            train,
            val,
            TrainConfig(epochs=2, batch_size=16, device="cpu"),
            run_dir=tmp_path,
            progress=False,
            log=None,
            loss_fn=PoisonBatchNorm(),
        )
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "field, value",
    [("lr", float("inf")), ("lr", float("nan")), ("kl_weight", float("nan")), ("kl_weight", -1.0)],
)
def test_non_finite_or_negative_settings_are_refused(field, value):
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')}"):
        TrainConfig(**{field: value}).validate()


@pytest.mark.slow
def test_the_loss_the_config_names_trains_as_the_same_loss_given_by_hand(tiny_split):
    """Building a network draws from the global random generator, from which a VAE samples:
    the loss built from the config must leave the training exactly as a loss built before."""
    from percae.loss import build_loss

    train, val = tiny_split
    config = cfg(
        epochs=1, batch_size=16, loss="perceptual", perceptual_net="efficientnet-lite0", amp=False
    )
    by_config = make("vae")
    train_autoencoder(by_config, train, val, config, progress=False, log=None)
    by_hand = make("vae")
    train_autoencoder(
        by_hand,
        train,
        val,
        config,
        progress=False,
        log=None,
        loss_fn=build_loss("perceptual", "efficientnet-lite0"),
    )
    assert_same_state(state_copy(by_config), state_copy(by_hand))


@pytest.mark.slow
def test_on_epoch_gets_each_epochs_row_once_its_checkpoint_is_saved(tiny_split, tmp_path):
    train, val = tiny_split
    seen = []

    def on_epoch(row):
        history = (tmp_path / "history.csv").read_text().splitlines()
        seen.append(
            (row["epoch"], row["val_loss"], len(history) - 1, (tmp_path / "checkpoint.pt").exists())
        )

    result = train_autoencoder(
        make("vae"),
        train,
        val,
        cfg(epochs=3, batch_size=16),
        run_dir=tmp_path,
        progress=False,
        log=None,
        on_epoch=on_epoch,
    )
    assert [(e, v) for e, v, _, _ in seen] == [(r["epoch"], r["val_loss"]) for r in result.history]
    assert [(n, saved) for _, _, n, saved in seen] == [(1, True), (2, True), (3, True)]


def test_a_share_of_a_gpu_caches_features_in_a_quarter_of_that_share(monkeypatch):
    """Four Ray units at --gpus-per-run 0.25 on one GPU: each cache a sixteenth of it, not four
    quarters."""
    from types import SimpleNamespace

    from percae import feature_cache

    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=80 << 30)
    )
    cuda = torch.device("cuda", 0)
    assert feature_cache.feature_cache_bytes(cuda, None) == 20 << 30
    quarter = feature_cache.shared_gpu_megabytes(0.25, cuda)  # a Ray task's budget
    assert feature_cache.feature_cache_bytes(cuda, quarter) == 5 << 30
    assert feature_cache.feature_cache_bytes(cuda, 100.0) == 100 << 20  # a set size stays as set
    assert feature_cache.feature_cache_bytes(torch.device("cpu"), None) == 0


def _calibration_loss():
    torch.manual_seed(4)
    return PerceptualLoss(nn.Sequential(nn.Conv2d(3, 6, 5, stride=4), nn.ReLU()), cpu_chunk=None)


def test_an_auto_perceptual_scale_is_calibrated_once_and_recorded_with_the_run(small, tmp_path):
    from percae.loss import calibrated_scale

    train, val = small
    expected = calibrated_scale(
        _calibration_loss(), to_float_batch(torch.from_numpy(train.materialize()))
    )
    assert 1 < expected  # (the features of this small network vary less than the pixels)
    seen = []

    class Spy(PerceptualLoss):
        def forward(self, *args):
            seen.append(self.scale)
            return super().forward(*args)

    loss = Spy(_calibration_loss().network, cpu_chunk=None)
    train_autoencoder(
        make(),
        train,
        val,
        cfg(epochs=1, loss="perceptual", perceptual_scale="auto"),
        run_dir=tmp_path / "run",
        progress=False,
        log=None,
        loss_fn=loss,
    )
    assert seen and all(
        s == pytest.approx(expected, rel=1e-9) for s in seen
    )  # (24 images: all in the sample)
    assert TrainConfig.load(
        tmp_path / "run" / "train_config.json"
    ).perceptual_scale == pytest.approx(expected, rel=1e-9)
    assert (
        json.loads((tmp_path / "run" / "train_result.json").read_text())["perceptual_scale"]
        == seen[0]
    )


@pytest.mark.slow
def test_an_interrupted_run_resumes_only_under_its_perceptual_scale(small, tmp_path):
    train, val = small

    def stop(line):
        if EPOCH_LINE.match(line):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(
            make(),
            train,
            val,
            cfg(loss="perceptual", perceptual_scale="auto"),
            run_dir=tmp_path,
            progress=False,
            log=stop,
            loss_fn=_calibration_loss(),
        )
    with pytest.raises(ConfigError, match="perceptual_scale"):
        train_autoencoder(
            make(),
            train,
            val,
            cfg(loss="perceptual", perceptual_scale=1.0),
            run_dir=tmp_path,
            progress=False,
            log=None,
            loss_fn=_calibration_loss(),
        )
    # Other training images (which would calibrate another scale): refused as well.
    with pytest.raises(ConfigError, match="on other images|perceptual_scale"):
        train_autoencoder(
            make(),
            val.subset(np.arange(4)),
            val,
            cfg(loss="perceptual", perceptual_scale="auto"),
            run_dir=tmp_path,
            progress=False,
            log=None,
            loss_fn=_calibration_loss(),
        )
    result = train_autoencoder(
        make(),
        train,
        val,
        cfg(loss="perceptual", perceptual_scale="auto"),
        run_dir=tmp_path,
        progress=False,
        log=None,
        loss_fn=_calibration_loss(),
    )
    assert result.epochs_run == 3


@pytest.mark.slow
def test_an_interrupted_run_resumes_only_on_the_images_it_began_with(small, tmp_path):
    train, val = small

    def stop(line):
        if EPOCH_LINE.match(line):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(make(), train, val, cfg(), run_dir=tmp_path, progress=False, log=stop)
    other = train.subset(np.arange(1, len(train)))  # one image fewer
    with pytest.raises(ConfigError, match="on other images"):
        train_autoencoder(make(), other, val, cfg(), run_dir=tmp_path, progress=False, log=None)
    assert (
        train_autoencoder(
            make(), train, val, cfg(), run_dir=tmp_path, progress=False, log=None
        ).epochs_run
        == 3
    )


def test_a_killed_writes_temporary_file_is_removed_by_the_next_run_there(small, tmp_path):
    train, val = small
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    train_autoencoder(make(), train, val, cfg(epochs=1), run_dir=tmp_path, progress=False, log=None)
    assert not list(tmp_path.glob(".*.tmp")) and (tmp_path / "train_result.json").exists()


def test_a_full_disk_names_the_file_and_the_cause_and_leaves_no_temporary_file(tmp_path):
    import errno

    from percae.files import atomic_write_bytes

    def full(f):
        f.write(b"some")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as info:
        atomic_write_bytes(tmp_path / "checkpoint.pt", full)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(
        tmp_path / "checkpoint.pt"
    )
    assert list(tmp_path.iterdir()) == []


def test_training_layout_keeps_transposed_weights_contiguous_on_cpu_and_outputs_unchanged():
    # oneDNN reorders a channels-last transposed weight at every call on a CPU; the layout
    # must change speed only, never what the autoencoder computes.
    from percae.device import to_channels_last

    model = make()
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        before = model.eval()(x).reconstruction
        to_channels_last(model, torch.device("cpu"))
        after = model(x.to(memory_format=torch.channels_last)).reconstruction
    layers = list(model.modules())
    convs = [m for m in layers if type(m) is nn.Conv2d]
    transposed = [m for m in layers if isinstance(m, nn.ConvTranspose2d)]
    assert convs and transposed
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert all(m.weight.is_contiguous() for m in transposed)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("saved_channels_last", [True, False])
def test_a_checkpointed_optimizer_state_takes_its_parameters_layout(saved_channels_last):
    """Adam's moments saved in one memory layout (another device, or percae before transposed
    weights were kept contiguous on CPU) and loaded beside parameters in the other: fused Adam
    must still update each weight with its own moments, as if nothing had been saved."""
    from percae.training import match_state_layout

    torch.manual_seed(0)
    weight, grads = torch.randn(8, 4, 3, 3), [torch.randn(8, 4, 3, 3) for _ in range(2)]
    saved_layout = torch.channels_last if saved_channels_last else torch.contiguous_format
    live_layout = torch.contiguous_format if saved_channels_last else torch.channels_last

    reference = nn.Parameter(weight.clone().contiguous(memory_format=live_layout))
    uninterrupted = torch.optim.Adam([reference], lr=0.1, fused=True)
    for g in grads:
        reference.grad = g.contiguous(memory_format=live_layout)
        uninterrupted.step()
    # One step saved in one layout, the second taken after loading beside the other.
    p = nn.Parameter(weight.clone().contiguous(memory_format=saved_layout))
    first = torch.optim.Adam([p], lr=0.1, fused=True)
    p.grad = grads[0].contiguous(memory_format=saved_layout)
    first.step()
    state = first.state_dict()
    resumed = nn.Parameter(p.detach().clone().contiguous(memory_format=live_layout))
    optimizer = torch.optim.Adam([resumed], lr=0.1, fused=True)
    optimizer.load_state_dict(state)
    match_state_layout(optimizer)
    resumed.grad = grads[1].contiguous(memory_format=live_layout)
    optimizer.step()
    torch.testing.assert_close(resumed.detach(), reference.detach(), rtol=1e-6, atol=1e-7)
