"""Autoencoder training: it learns, keeps the best validation epoch, stops early, resumes
an interrupted run exactly, leaves the perceptual network untouched, and decoder
retraining moves the decoder alone."""

from __future__ import annotations

import csv
import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from percae.config import ConfigError
from percae.loss import PerceptualLoss, PixelLoss
from percae.model import MODEL_FILE, AutoencoderConfig, build_autoencoder, load_autoencoder
from percae.training import DeviceImages, TrainConfig, evaluate_loss, to_float_batch, train_autoencoder

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

    def forward(self, reconstruction, target):
        mse = F.mse_loss(reconstruction, target)
        return mse if torch.is_grad_enabled() else -mse


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


def test_loss_decreases_and_the_best_epoch_is_kept(tiny_split):
    train, val = tiny_split
    model = make()
    snaps = Snapshots(model)
    result = train_autoencoder(model, PixelLoss(), train, val, cfg(epochs=3, batch_size=16), progress=False, log=snaps)
    h = result.history
    assert [r["epoch"] for r in h] == [1, 2, 3] and result.epochs_run == 3
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    vals = [r["val_loss"] for r in h]
    assert result.best_val_loss == min(vals)
    assert result.best_epoch == 1 + vals.index(min(vals))
    # The model ends with the best epoch's weights, and they score the recorded loss.
    assert_same_state(state_copy(model), snaps.states[result.best_epoch])
    assert not model.training
    again = evaluate_loss(model, PixelLoss(), DeviceImages(val, torch.device("cpu")), batch_size=5, amp=False)
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
    result = train_autoencoder(model, WorseWhenEvaluated(), train, val, cfg(epochs=3), progress=False, log=snaps)
    assert result.best_epoch < 3, "test setup: validation should get worse while training"
    assert_same_state(state_copy(model), snaps.states[result.best_epoch])
    last = snaps.states[3]
    assert any(not torch.equal(last[k], v) for k, v in model.state_dict().items())
    again = evaluate_loss(model, WorseWhenEvaluated(), DeviceImages(val, torch.device("cpu")), batch_size=8, amp=False)
    assert again == pytest.approx(result.best_val_loss, rel=1e-5)


def test_early_stopping(small):
    train, val = small
    result = train_autoencoder(make(), WorseWhenEvaluated(), train, val, cfg(epochs=6, patience=1), progress=False, log=None)
    assert result.epochs_run < 6
    assert result.epochs_run == result.best_epoch + 1
    assert len(result.history) == result.epochs_run


def read_history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_interrupted_run_resumes_exactly(kind, small, tmp_path):
    train, val = small
    config = cfg(epochs=3)

    whole_dir = tmp_path / "whole"
    whole = make(kind)
    r_whole = train_autoencoder(whole, PixelLoss(), train, val, config, run_dir=whole_dir, progress=False, log=None)

    run_dir = tmp_path / "interrupted"

    def interrupt_at_epoch_2(line):
        m = EPOCH_LINE.match(line)
        if m and int(m.group(1)) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(make(kind), PixelLoss(), train, val, config, run_dir=run_dir, progress=False, log=interrupt_at_epoch_2)
    # The interruption leaves a checkpoint (plain tensors) and the history of the epochs it holds.
    checkpoint = run_dir / "checkpoint.pt"
    assert checkpoint.exists()
    ck = torch.load(checkpoint, weights_only=True)
    done = len(ck["history"])
    assert 1 <= done <= 2
    assert len(read_history(run_dir / "history.csv")) == done
    assert not (run_dir / MODEL_FILE).exists()

    resumed = make(kind)
    lines = []
    r_resumed = train_autoencoder(resumed, PixelLoss(), train, val, config, run_dir=run_dir, progress=False, log=lines.append)
    assert any("resum" in line for line in lines)
    assert sum(bool(EPOCH_LINE.match(line)) for line in lines) == 3 - done  # it did not start over

    assert_same_state(state_copy(whole), state_copy(resumed))
    assert r_resumed.best_epoch == r_whole.best_epoch
    assert r_resumed.best_val_loss == r_whole.best_val_loss
    assert [r["val_loss"] for r in r_resumed.history] == [r["val_loss"] for r in r_whole.history]

    # The finished run folder: weights, configs, history; the checkpoint is gone.
    for d in (whole_dir, run_dir):
        assert (d / MODEL_FILE).exists() and (d / "train_config.json").exists() and (d / "train_result.json").exists()
        assert not (d / "checkpoint.pt").exists()
        rows = read_history(d / "history.csv")
        assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
        assert TrainConfig.load(d / "train_config.json") == config
        assert json.loads((d / "train_result.json").read_text())["best_epoch"] == r_whole.best_epoch
    rows = read_history(run_dir / "history.csv")
    assert [float(r["val_loss"]) for r in rows] == pytest.approx([r["val_loss"] for r in r_whole.history], rel=1e-12)
    assert_same_state(state_copy(load_autoencoder(run_dir)), state_copy(whole))


def test_perceptual_training_leaves_the_network_untouched(small, tmp_path):
    train, val = small
    # A network with BatchNorm, whose running statistics would move in train mode (the
    # built-in networks have none left: EfficientNet's are folded into its convolutions).
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    loss = PerceptualLoss(net, name="custom")
    before = state_copy(net)
    modes = []
    net.register_forward_pre_hook(lambda m, args: modes.append(any(x.training for x in m.modules())))

    model = make()
    model_before = state_copy(model)
    train_autoencoder(model, loss, train, val, cfg(epochs=2), run_dir=tmp_path, progress=False, log=None)

    assert modes and not any(modes)  # eval mode at every call, in training and validation alike
    assert_same_state(before, state_copy(net))
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())
    assert not net.training
    # The autoencoder itself did train, and its saved state holds nothing of the network.
    assert any(not torch.equal(model_before[k], v) for k, v in model.state_dict().items())
    saved = torch.load(tmp_path / MODEL_FILE, weights_only=True)
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
    result = train_autoencoder(model, PixelLoss(), train, val, cfg(epochs=2), progress=False, log=None, freeze_encoder=True)
    after = state_copy(model)
    frozen = [k for k in before if not k.startswith(("decoder_input.", "decoder_body."))]
    assert any(k.startswith("encoder.") and "running_var" in k for k in frozen)
    assert any(k.startswith("mu.") for k in frozen)
    for k in frozen:
        assert torch.equal(before[k], after[k]), k
    decoder_weights = [k for k in before if k.startswith(("decoder_input.", "decoder_body.")) and k.endswith("weight")]
    assert decoder_weights and all(not torch.equal(before[k], after[k]) for k in decoder_weights)
    assert result.epochs_run == 2


def test_training_refuses_mismatched_or_tiny_data(tiny_images):
    import numpy as np

    model = build_autoencoder(AutoencoderConfig(image_size=80))
    with pytest.raises(ConfigError, match="80"):
        train_autoencoder(model, PixelLoss(), tiny_images, tiny_images, cfg(), progress=False, log=None)
    with pytest.raises(ConfigError):
        train_autoencoder(make(), PixelLoss(), tiny_images.subset(np.arange(1)), tiny_images, cfg(), progress=False, log=None)
    with pytest.raises(ConfigError):
        train_autoencoder(make(), PixelLoss(), tiny_images, tiny_images, cfg(epochs=0), progress=False, log=None)
