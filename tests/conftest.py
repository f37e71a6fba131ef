"""Shared tiny fixtures: one LunarLander collection generated once per session, a
64-image set drawn from it, and a switch that takes the network away."""

from __future__ import annotations

import os

# Two OpenMP threads that spin while waiting are ten times slower than one thread when
# another process shares the two cores; passive waiting keeps the suite fast either way.
# (Read when torch loads, so it must be set before the import below.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import socket  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from percae.data import ImageSet
from percae.data.lunarlander import LunarLanderConfig, generate_lunarlander, load_lunarlander

torch.set_num_threads(2)

# The collection used by every module: 6 rollouts (3 unaltered, 3 altered) of 30 steps.
COLLECTION = LunarLanderConfig(rollouts=6, steps=30, image_size=64, seed=0, workers=2)


@pytest.fixture(scope="session")
def collection_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("lunarlander") / "collection"
    generate_lunarlander(path, COLLECTION, progress=False)
    return path


@pytest.fixture(scope="session")
def collection(collection_path):
    return load_lunarlander(collection_path)


@pytest.fixture(scope="session")
def tiny_images(collection):
    """64 LunarLander frames (every other frame of the first rollouts) as an in-memory ImageSet."""
    images = np.array(collection.images[: 2 * 64 : 2])
    assert images.shape == (64, 64, 64, 3)
    groups = collection.rollouts[: 2 * 64 : 2]
    return ImageSet(images, targets=collection.positions[: 2 * 64 : 2], groups=groups, name="tiny")


@pytest.fixture(scope="session")
def tiny_split(tiny_images):
    """(train 48, val 16) positions-based split of the tiny set (plain, not by rollout)."""
    return tiny_images.subset(np.arange(48)), tiny_images.subset(np.arange(48, 64))


@pytest.fixture
def no_network(monkeypatch):
    """Make every attempt to reach the network fail at once, as on a machine without internet."""

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in this test")

    def refuse_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "name resolution is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_dns)


@pytest.fixture(autouse=True, scope="session")
def percae_cache(tmp_path_factory):
    """percae's cache folder (decoded image folders) for the whole session, not ~/.cache;
    set in the environment so that the percae processes the tests start use it too."""
    path = tmp_path_factory.mktemp("percae-cache")
    os.environ["PERCAE_CACHE"] = str(path)
    return path


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME and torch hub directory, so no machine-wide cache is seen."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return home
