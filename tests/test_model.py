"""Autoencoder architecture: shapes, supported sizes, the deterministic embedding, VAE
sampling only in training, and a strict, weights-only save/reload round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from percae.config import ConfigError
from percae.model import (
    AutoencoderConfig,
    VariationalAutoencoder,
    build_autoencoder,
    load_autoencoder,
    save_autoencoder,
)


def make(kind="ae", z=8, size=64, seed=0):
    torch.manual_seed(seed)
    return build_autoencoder(AutoencoderConfig(kind=kind, latent_dim=z, image_size=size))


def randomise_batchnorm(model, seed=1):
    """Give every BatchNorm non-default statistics, so that a lost buffer would show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.num_batches_tracked.fill_(7)


@pytest.mark.parametrize("kind", ["ae", "vae"])
@pytest.mark.parametrize("size", [64, 80, 96])
def test_output_shapes(kind, size):
    model = make(kind, z=5, size=size).eval()
    x = torch.rand(3, 3, size, size)
    with torch.no_grad():
        out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.mu.shape == (3, 5)
    assert (out.reconstruction >= 0).all() and (out.reconstruction <= 1).all()  # sigmoid output
    if kind == "vae":
        assert out.logvar.shape == (3, 5)
    else:
        assert out.logvar is None
    with torch.no_grad():
        assert model.encode(x).shape == (3, 5)
        assert model.decode(torch.zeros(2, 5)).shape == (2, 3, size, size)


@pytest.mark.parametrize("size", [32, 48, 63, 65, 72, 88, 100])
def test_unsupported_sizes_raise_config_error(size):
    with pytest.raises(ConfigError, match=str(size)):
        build_autoencoder(AutoencoderConfig(image_size=size))


def test_bad_kind_and_latent_raise_config_error():
    with pytest.raises(ConfigError):
        build_autoencoder(AutoencoderConfig(kind="gan"))
    with pytest.raises(ConfigError):
        build_autoencoder(AutoencoderConfig(latent_dim=0))


def test_vae_encode_is_deterministic_and_is_the_mean():
    model = make("vae").eval()
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        a, b = model.encode(x), model.encode(x)
        out = model(x)
    assert torch.equal(a, b)
    assert torch.allclose(out.mu, a, atol=1e-6)
    # mu is the encoder trunk followed by the mu layer, not the logvar layer.
    with torch.no_grad():
        h = model.encoder(x)
        assert torch.allclose(a, h @ model.mu.weight.T + model.mu.bias, atol=1e-5)


def test_vae_samples_in_training_only():
    model = make("vae")
    x = torch.rand(4, 3, 64, 64)
    model.train()
    with torch.no_grad():
        o1, o2 = model(x), model(x)
    assert not torch.allclose(o1.reconstruction, o2.reconstruction)
    assert torch.allclose(o1.mu, o2.mu)  # the mean itself is not sampled
    model.eval()
    with torch.no_grad():
        e1, e2 = model(x), model(x)
        direct = model.decode(model.encode(x))
    assert torch.equal(e1.reconstruction, e2.reconstruction)
    assert torch.allclose(e1.reconstruction, direct, atol=1e-6)


def test_plain_autoencoder_never_samples():
    model = make("ae").train()
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        o1, o2 = model(x), model(x)
    assert torch.allclose(o1.reconstruction, o2.reconstruction, atol=1e-6)


def test_decoder_parameters_are_exactly_the_decoder():
    for kind in ("ae", "vae"):
        model = make(kind)
        dec = {id(p) for p in model.decoder_parameters()}
        names = {n for n, p in model.named_parameters() if id(p) in dec}
        assert names and all(n.startswith(("decoder_input.", "decoder_body.")) for n in names)
        assert names == {
            n
            for n, _ in model.named_parameters()
            if n.startswith(("decoder_input.", "decoder_body."))
        }


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_save_and_reload_gives_identical_outputs(kind, tmp_path):
    model = make(kind, z=6, size=80)
    randomise_batchnorm(model)
    model.eval()
    save_autoencoder(model, tmp_path / "run")
    loaded = load_autoencoder(tmp_path / "run")
    assert isinstance(loaded, VariationalAutoencoder) == (kind == "vae")
    assert not loaded.training
    assert loaded.config.to_dict() == model.config.to_dict()
    x = torch.rand(3, 3, 80, 80)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.reconstruction, b.reconstruction)
    assert torch.equal(a.mu, b.mu)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_state_file_is_plain_tensors(tmp_path):
    from safetensors.torch import load_file

    model = make("vae")
    save_autoencoder(model, tmp_path)
    state = load_file(tmp_path / "model.safetensors")  # safetensors: tensors only, no code to run
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    # The config is plain JSON naming the architecture.
    configs = [p for p in tmp_path.glob("*.json")]
    assert len(configs) == 1
    assert json.loads(configs[0].read_text()) == {"kind": "vae", "latent_dim": 8, "image_size": 64}


def test_a_run_saved_as_model_pt_before_safetensors_still_loads(tmp_path):
    model = make("vae")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (tmp_path / "model_config.json").write_text(json.dumps(model.config.to_dict()))
    loaded = load_autoencoder(tmp_path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_reload_is_strict(tmp_path):
    from percae.model import load_tensors, save_tensors

    model = make("ae")
    save_autoencoder(model, tmp_path)
    state = load_tensors(tmp_path / "model.safetensors")

    missing = dict(state)
    del missing["mu.weight"]
    save_tensors(tmp_path / "model.safetensors", missing)
    with pytest.raises(ConfigError, match="lacks mu.weight"):
        load_autoencoder(tmp_path)

    extra = dict(state)
    extra["perceptual.network.weight"] = torch.zeros(3)
    save_tensors(tmp_path / "model.safetensors", extra)
    with pytest.raises(ConfigError, match="has unexpected perceptual.network.weight"):
        load_autoencoder(tmp_path)


def test_reload_of_a_folder_without_a_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_autoencoder(tmp_path)


@pytest.mark.slow
def test_an_exported_run_reloads_to_the_same_embeddings(tiny_split, tmp_path):
    from click.testing import CliRunner

    from percae.cli import main
    from percae.embeddings import encode_images
    from percae.training import TrainConfig, train_autoencoder

    train, val = tiny_split
    model = make("vae")
    train_autoencoder(
        model,
        train,
        val,
        TrainConfig(epochs=1, batch_size=16, device="cpu"),
        run_dir=tmp_path / "run",
        progress=False,
        log=None,
    )
    result = CliRunner().invoke(
        main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "shared")]
    )
    assert result.exit_code == 0, result.output
    shared = tmp_path / "shared"
    assert {p.name for p in shared.iterdir()} == {
        "model.safetensors",
        "model_config.json",
        "train_config.json",
        "train_result.json",
        "history.csv",
        "README.md",
    }
    images = val.materialize()
    assert np.array_equal(
        encode_images(load_autoencoder(shared), images, device="cpu"),
        encode_images(load_autoencoder(tmp_path / "run"), images, device="cpu"),
    )
    card = (shared / "README.md").read_text()
    assert (
        "# percae VAE, z = 8, 64 px images, pixel-wise mean squared error" in card
        and "best epoch 1 of 1" in card
    )
    again = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--out", str(shared)])
    assert again.exit_code == 1 and "not empty" in again.output


@pytest.mark.slow
def test_the_model_card_loads_the_encoder_in_plain_pytorch_to_percae_s_embeddings(
    tiny_split, tmp_path
):
    """The card's snippet, run in a fresh interpreter that never imports percae, on the exported
    files: the same embeddings as `percae encode`."""
    import os
    import re
    import stat
    import subprocess
    import sys

    from percae.embeddings import encode_images
    from percae.export import export_run
    from percae.training import TrainConfig, train_autoencoder

    train, val = tiny_split
    train_autoencoder(
        make("ae"), train, val, TrainConfig(epochs=1, batch_size=16, device="cpu"),
        run_dir=tmp_path / "run", progress=False, log=None,
    )  # fmt: skip
    shared = export_run(tmp_path / "run", tmp_path / "shared")
    # The folder as the user's umask makes folders, as a run's is (not tempfile's private 0700).
    assert stat.S_IMODE(shared.stat().st_mode) == stat.S_IMODE((tmp_path / "run").stat().st_mode)
    card = (shared / "README.md").read_text()
    snippet = re.search(r"In plain PyTorch.*?```python\n(.*?)```", card, re.S).group(1)
    images = val.materialize()[:5]
    np.save(tmp_path / "images.npy", images)
    program = (
        snippet.replace("THIS_FOLDER", str(shared)).replace(
            "images = np.zeros(", f"images = np.load({str(tmp_path / 'images.npy')!r}) #"
        )
        + "\nimport sys\nassert 'percae' not in sys.modules\n"
        + f"np.save({str(tmp_path / 'z.npy')!r}, z.numpy())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-I", "-c", program], check=True, env=env, cwd=tmp_path)
    expected = encode_images(load_autoencoder(shared), images, device="cpu")
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), expected, rtol=1e-4, atol=1e-5)


def test_weights_of_another_dtype_than_the_model_s_are_refused(tiny_split, tmp_path):
    """A header edited from F32 to I32 would load, cast to float: the embeddings off by as much
    as the embeddings themselves."""
    from safetensors.torch import load_file, save_file

    model = make("ae")
    save_autoencoder(model, tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state["mu.weight"] = state["mu.weight"].view(torch.int32)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ConfigError, match="mu.weight is torch.int32, not torch.float32"):
        load_autoencoder(tmp_path)
