"""Bad input, as a hostile new user gives it: every case ends in exit status 1 with one
line on stderr (no traceback) and leaves the folders it was given as they were, so that
the corrected command runs. The cases are those a hostile new user tried, then our own."""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from percae.cli import main
from percae.model import (
    AutoencoderConfig,
    build_autoencoder,
    load_tensors,
    save_autoencoder,
    save_tensors,
)

from test_data_stl10 import intended_images, write_images, write_labels

pytestmark = pytest.mark.slow  # whole studies or the command line end to end


@dataclass
class World:
    """What a case may start from: its own empty folder, and shared read-only inputs."""

    tmp: Path  # the case's own folder; every case must leave it as it found it
    collection: Path  # a good LunarLander collection (shared: never modified)
    run: Path  # a good saved autoencoder (shared: never modified)

    def copy_collection(self) -> Path:
        path = self.tmp / "collection"
        shutil.copytree(self.collection, path)
        return path

    def copy_run(self) -> Path:
        path = self.tmp / "run"
        shutil.copytree(self.run, path)
        return path

    def file(self, name: str, content: bytes = b"x") -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("good_run")
    save_autoencoder(build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0), path)
    return path


def snapshot(root: Path) -> dict:
    """Every file and folder under `root`, with each file's bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = (
                Path(p).read_bytes() if Path(p).is_file() else "not a regular file"
            )
    return out


def _train(w, *extra):
    return [
        "train",
        "--data",
        w.collection,
        "--out",
        w.tmp / "out",
        "--z",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        *extra,
    ]


def _reproduce(w, *extra, root=None, out=None):
    return [
        "reproduce",
        "lunarlander",
        "--preset",
        "quick",
        "--root",
        root or w.collection,
        "--out",
        out or w.tmp / "study",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--predictor-epochs",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def _encode(w, run=None, data=None, out=None, *extra):
    return [
        "encode",
        "--run",
        run or w.run,
        "--data",
        data or w.collection,
        "--out",
        out or w.tmp / "z.npy",
        "--device",
        "cpu",
        *extra,
    ]


def _data(w, *extra, out=None):
    return [
        "data",
        "lunarlander",
        "--out",
        out or w.tmp / "new",
        "--rollouts",
        "6",
        "--steps",
        "10",
        *extra,
    ]


def _weights(w, state) -> Path:
    path = w.tmp / "weights.pt"
    torch.save(state, path)
    return path


def _model_with(w, change) -> Path:
    """A copy of the good run whose state dict `change` altered."""
    path = w.copy_run()
    state = load_tensors(path / "model.safetensors")
    change(state)
    save_tensors(path / "model.safetensors", state)
    return path


def _saved(w, image_size) -> Path:
    path = w.tmp / "run"
    save_autoencoder(build_autoencoder(AutoencoderConfig("ae", 4, image_size), seed=0), path)
    return path


def _config_with(w, change) -> Path:
    path = w.copy_run()
    config = json.loads((path / "model_config.json").read_text())
    change(config)
    (path / "model_config.json").write_text(json.dumps(config))
    return path


def _collection_with(w, name, write) -> Path:
    path = w.copy_collection()
    write(path / name)
    return path


def _set(d, key, value):
    d[key] = value


def _first_float(state):
    return next(k for k, v in state.items() if v.is_floating_point() and v.dim() > 1)


def _nan_weight(state):
    state[_first_float(state)][0] = float("nan")


def _inf_buffer(state):
    key = next(k for k in state if k.endswith("running_var"))
    state[key][0] = float("inf")


def _positions(path, values_of):
    def write(file):
        positions = np.load(file)
        np.save(file, values_of(positions))

    return lambda w: _collection_with(w, "positions.npy", write)


def _nan_positions(p):
    p = p.copy()
    p[3, 0] = np.nan
    return p


def _meta(change):
    def write(file):
        meta = json.loads(file.read_text())
        change(meta)
        file.write_text(json.dumps(meta))

    return write


def _empty_collection(w):
    path = w.copy_collection()
    np.save(path / "images.npy", np.zeros((0, 64, 64, 3), np.uint8))
    np.save(path / "positions.npy", np.zeros((0, 2), np.float32))
    np.save(path / "rollouts.npy", np.zeros((0,), np.int32))
    return path


def _image_folder(w, classes):
    from PIL import Image

    root = w.tmp / "images"
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
                root / c / f"{i}.png"
            )
    return root


def _stl(w, train_labels):
    folder = w.tmp / "stl" / "stl10_binary"
    folder.mkdir(parents=True)
    write_images(folder / "unlabeled_X.bin", intended_images(6, 0))
    write_images(folder / "train_X.bin", intended_images(len(train_labels), 1))
    write_labels(folder / "train_y.bin", np.array(train_labels))
    write_images(folder / "test_X.bin", intended_images(3, 2))
    write_labels(folder / "test_y.bin", np.array([10, 1, 3]))
    return w.tmp / "stl"


def _svhn_wrong_names(w):
    from scipy.io import savemat

    root = w.tmp / "svhn"
    root.mkdir()
    for name in ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"):
        savemat(
            root / name,
            {"images": np.zeros((32, 32, 3, 2), np.uint8), "labels": np.ones((2, 1), np.uint8)},
        )
    return root


def _study_with_other_settings(w):
    study = w.tmp / "study"
    study.mkdir()
    (study / "study_config.json").write_text(json.dumps({"dataset": "lunarlander", "ae_epochs": 7}))
    return study


def _interrupted_train(w, *settings):
    """A `percae train` run killed after its first epoch's checkpoint (epochs 2, pixel loss, z 4,
    lr 0.001)."""
    from percae.training import TrainState

    original = TrainState.save

    def killed(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise RuntimeError("killed after the first checkpoint")

    TrainState.save = killed
    try:
        CliRunner().invoke(main, list(map(str, _train(w, "--epochs", "2", *settings))))
    finally:
        TrainState.save = original
    assert (w.tmp / "out" / "checkpoint.pt").exists()


def _resume(w, *changed):
    _interrupted_train(w)
    return _train(w, "--epochs", "2", *changed)


def _report_with(w, name, content):
    """A finished-looking study folder (settings only) whose `name` holds `content`."""
    study = w.tmp / "study"
    (study / "runs").mkdir(parents=True)
    (study / "study_config.json").write_text(
        json.dumps(
            {
                "dataset": "lunarlander",
                "z_sizes": [4],
                "models": ["AE"],
                "perceptual_net": "alexnet-random",
            }
        )
    )
    (study / "baseline.json").write_text(json.dumps({"task": "position", "baseline": 20.0}))
    target = study / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return ["report", study]


# Result files as percae writes them, for a study of one AE unit (z 4, seed 0).
GOOD_RESULTS = {
    "runs/AE_z4_seed0/train_result.json": {
        "best_epoch": 1,
        "best_val_loss": 0.01,
        "epochs_run": 1,
        "seconds": 1.0,
        "images_per_s": 100.0,
        "seconds_per_epoch": 1.0,
        "device": "cpu",
        "bf16_autocast": False,
    },
    "runs/AE_z4_seed0/predictors.json": {
        "task": "position",
        "grid_seconds": 0.1,
        "count": 38,
        "selected": {
            "mlp": {"predictor": "mlp-32-relu-none", "val_loss": 1.0, "test_metric": 8.0},
            "linear": {"predictor": "linear-none", "val_loss": 1.1, "test_metric": 9.0},
        },
        "predictors": [],
        "config": {
            "epochs": 5,
            "batch_size": 512,
            "lr": 0.001,
            "patience": None,
            "seed": 0,
            "device": "cpu",
        },
    },
    "runs/AE_z4_seed0/retrain/retrain.json": {
        "l1_before": 0.2,
        "l1_after": 0.1,
        "epochs_run": 1,
        "best_epoch": 1,
    },
    "notes.json": {"data": []},
}


def _held(w, args):
    """`args`, while another process holds its results folder (as a running study does)."""
    import fcntl

    study = w.tmp / "study"
    study.mkdir(exist_ok=True)
    fd = os.open(study, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (an open file description of its own)
    HELD.append(fd)
    return args


HELD: list[int] = []


def _npy_bytes(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _report_with_edit(w, name, path, text):
    """A study whose result files are as percae writes them but `name`'s field at `path` (keys
    joined by dots), set to the JSON `text` (NaN and 1e999 included, as an editor could); with
    no `path`, `name` an array of Python objects (which loading must never unpickle)."""
    if path is None:
        args = _report_with(
            w, name, _npy_bytes(np.array([None] * 3, dtype=object), allow_pickle=True)
        )
        for other, record in GOOD_RESULTS.items():
            (w.tmp / "study" / other).parent.mkdir(parents=True, exist_ok=True)
            (w.tmp / "study" / other).write_text(json.dumps(record))
        return args
    *parents, key = path.split(".")
    content = json.loads(json.dumps(GOOD_RESULTS.get(name, {"task": "position", "baseline": 20.0})))
    owner = content
    for parent in parents:
        owner = owner[parent]
    owner[key] = "@@"
    args = _report_with(w, name, json.dumps(content).replace('"@@"', text).encode())
    for other, record in GOOD_RESULTS.items():
        if other != name:
            (w.tmp / "study" / other).parent.mkdir(parents=True, exist_ok=True)
            (w.tmp / "study" / other).write_text(json.dumps(record))
    return args


# One option given bad values, each on its own: the line must name the option.
# (The 80 px image size: the collections here are 64 px.)
OPTION_CASES = {
    "train": {
        "--perceptual-scale": ("0", "-2", "nan", "big"),
        "--lr": ("inf", "nan", "0", "-1"),
        "--epochs": ("0", "-1"),
        "--batch-size": ("0", "1"),
        "--z": ("0",),
        "--seed": ("-1", str(2**64)),
        "--device": ("bogus", "mps", "meta", "xla"),
        "--image-size": ("80",),
    },
    "data": {
        "--rollouts": ("3", "4"),
        "--steps": ("0",),
        "--image-size": ("50", "8"),
        "--workers": ("-1",),
        "--seed": ("-1",),
    },
    "reproduce": {
        "--predictor-epochs": ("0",),
        "--epochs": ("0",),
        "--retrain-epochs": ("-1",),
        "--image-size": ("50", "80"),
        "--device": ("bogus", "mps"),
        "--z": ("0", "big", str(10**30)),
        "--seeds": ("0", "a,b", "1,1", f"0,{2**64}"),
        "--seed": ("-1", str(2**64)),
        "--kl-weight": ("nan", "-0.5"),
        "--perceptual-scale": ("0", "inf", "automatic"),
    },
}


# (id, what the one line must contain, arguments built from the World)
CASES = [
    # --- percae train: settings
    (
        "train kl-weight nan",
        "--kl-weight",
        lambda w: _train(w, "--model", "vae", "--kl-weight", "nan"),
    ),
    (
        "train kl-weight negative",
        "--kl-weight",
        lambda w: _train(w, "--model", "vae", "--kl-weight", "-1"),
    ),
    ("train epochs beyond any float", "--epochs", lambda w: _train(w, "--epochs", "-" + "9" * 400)),
    (
        "train device cuda without one",
        "cuda",
        lambda w: (
            _train(w, "--device", "cuda:0")
            if not torch.cuda.is_available()
            else pytest.skip("this machine has CUDA")
        ),
    ),
    (
        "train network without the perceptual loss",
        "--perceptual-net is for the perceptual loss, and this run trains with pixel loss",
        lambda w: _train(w, "--perceptual-net", "alexnet-random"),
    ),
    (
        "train unknown network",
        "unknown perceptual network",
        lambda w: _train(w, "--loss", "perceptual", "--perceptual-net", "foo"),
    ),
    (
        "train missing weights file",
        "does not exist",
        lambda w: _train(
            w,
            "--loss",
            "perceptual",
            "--perceptual-net",
            "alexnet",
            "--perceptual-weights",
            w.tmp / "none.pt",
        ),
    ),
    (
        "train garbage weights file",
        "cannot read",
        lambda w: _train(
            w,
            "--loss",
            "perceptual",
            "--perceptual-net",
            "alexnet",
            "--perceptual-weights",
            w.file("w.pt", b"garbage"),
        ),
    ),
    (
        "train wrong-shaped weights",
        "features.0.weight",
        lambda w: _train(
            w,
            "--loss",
            "perceptual",
            "--perceptual-net",
            "alexnet",
            "--perceptual-weights",
            _weights(
                w,
                {
                    k: torch.zeros(2)
                    for k in (
                        "features.0.weight",
                        "features.0.bias",
                        "features.3.weight",
                        "features.3.bias",
                    )
                },
            ),
        ),
    ),
    (
        "train not a collection",
        "not a LunarLander collection",
        lambda w: _train(w)[:2] + [w.tmp] + _train(w)[3:],
    ),
    ("train unknown dataset", "unknown dataset", lambda w: _train(w, "--dataset", "mnist")),
    (
        "train out in a file",
        "out",
        lambda w: _train(w)[:4] + [w.file("afile") / "run"] + _train(w)[5:],
    ),
    ("train out is a file", "out", lambda w: _train(w)[:4] + [w.file("afile")] + _train(w)[5:]),
    # --- percae train: resuming under other settings
    ("resume with another lr", "lr", lambda w: _resume(w, "--lr", "0.5")),
    (
        "resume with another loss",
        "loss",
        lambda w: _resume(w, "--loss", "perceptual", "--perceptual-net", "alexnet-random"),
    ),
    ("resume with another z", "latent_dim", lambda w: _resume(w, "--z", "8")),
    ("resume with another model", "kind", lambda w: _resume(w, "--model", "vae")),
    ("resume with another seed", "seed", lambda w: _resume(w, "--seed", "3")),
    # --- percae encode
    (
        "encode corrupted weights",
        "model.safetensors",
        lambda w: _encode(w, run=_corrupt(w.copy_run() / "model.safetensors")),
    ),
    (
        "encode truncated weights",
        "model.safetensors",
        lambda w: _encode(w, run=_truncate(w.copy_run() / "model.safetensors")),
    ),
    (
        "encode weights of another shape",
        "model.safetensors",
        lambda w: _encode(w, run=_config_with(w, lambda c: _set(c, "latent_dim", 16))),
    ),
    (
        "encode model_config.json not JSON",
        "model_config.json",
        lambda w: _encode(w, run=_write(w.copy_run() / "model_config.json", b"{not json")),
    ),
    (
        "encode model_config.json unknown key",
        "model_config.json",
        lambda w: _encode(w, run=_config_with(w, lambda c: _set(c, "depth", 3))),
    ),
    (
        "encode model_config.json wrong type",
        "latent_dim",
        lambda w: _encode(w, run=_config_with(w, lambda c: _set(c, "latent_dim", "4"))),
    ),
    (
        "encode model_config.json bad kind",
        "kind",
        lambda w: _encode(w, run=_config_with(w, lambda c: _set(c, "kind", "gan"))),
    ),
    (
        "encode model_config.json a list",
        "model_config.json",
        lambda w: _encode(w, run=_write(w.copy_run() / "model_config.json", b"[1, 2]")),
    ),
    (
        "encode missing weights",
        "model.safetensors",
        lambda w: _encode(w, run=_remove(w.copy_run() / "model.safetensors")),
    ),
    ("encode NaN weights", "NaN", lambda w: _encode(w, run=_model_with(w, _nan_weight))),
    ("encode inf buffer", "NaN", lambda w: _encode(w, run=_model_with(w, _inf_buffer))),
    (
        "encode out in a missing folder",
        "folder",
        lambda w: _encode(w, out=w.tmp / "missing" / "z.npy"),
    ),
    ("encode out a file, not .npy", "is a file", lambda w: _encode(w, out=w.file("z.txt"))),
    (
        "encode out a folder of other files",
        "not empty",
        lambda w: _encode(w, out=w.file("full/other.txt").parent),
    ),
    ("encode out exists", "exists", lambda w: _encode(w, out=w.file("z.npy"))),
    ("encode out under a file", "out", lambda w: _encode(w, out=w.file("afile") / "z.npy")),
    (
        "encode device bogus",
        "--device",
        lambda w: _encode(w, None, None, None, "--device", "bogus"),
    ),
    ("encode with a model of another image size", "80", lambda w: _encode(w, run=_saved(w, 80))),
    (
        "encode text in positions.npy",
        "positions.npy",
        lambda w: _encode(
            w, data=_collection_with(w, "positions.npy", lambda f: np.save(f, np.array(["a"] * 3)))
        ),
    ),
    (
        "encode a .npy of the wrong shape",
        "(N, 3, S, S)",
        lambda w: _encode(w, data=_npy(w, np.zeros((2, 64, 64, 3), np.float32))),
    ),
    (
        "encode a .npy of another size",
        "80 px",
        lambda w: _encode(w, data=_npy(w, np.zeros((2, 80, 80, 3), np.uint8))),
    ),
    (
        "encode a .npy of objects",
        "not a plain .npy",
        lambda w: _encode(w, data=_npy(w, np.array([{"a": 1}], dtype=object))),
    ),
    ("encode a file that is not .npy", ".npy", lambda w: _encode(w, data=w.file("images.txt"))),
    (
        "encode non-UTF-8 meta.json",
        "meta.json",
        lambda w: _encode(
            w, data=_collection_with(w, "meta.json", lambda f: f.write_bytes(b"\xff\xfe{}"))
        ),
    ),
    # --- percae data lunarlander
    ("data out not empty", "not empty", lambda w: _data(w, out=_nonempty(w.tmp / "new"))),
    ("data out holds a collection", "already holds", lambda w: _data(w, out=w.copy_collection())),
    ("data out under a file", "out", lambda w: _data(w, out=w.file("afile") / "new")),
    # --- percae reproduce: settings refused before any file
    (
        "reproduce unknown network",
        "unknown perceptual network",
        lambda w: _reproduce(w, "--perceptual-net", "foo"),
    ),
    (
        "reproduce max autoencoder images 0",
        "--max-autoencoder-images",
        lambda w: _reproduce(w, "--max-autoencoder-images", "0"),
    ),
    (
        "reproduce rollouts 4",
        "--rollouts",
        lambda w: _reproduce(w, "--rollouts", "4", root=w.tmp / "new"),
    ),
    (
        "reproduce caps too small for the collection it generates",
        "fewer than 2 groups",
        lambda w: _reproduce(
            w,
            "--rollouts",
            "6",
            "--steps",
            "10",
            "--max-autoencoder-images",
            "1",
            root=w.tmp / "new",
        ),
    ),
    (
        "reproduce caps too small for a collection it generates into a new deep --root",
        "fewer than 2 groups",
        lambda w: _reproduce(
            w,
            "--rollouts",
            "6",
            "--steps",
            "10",
            "--max-autoencoder-images",
            "1",
            root=w.tmp / "new" / "deep" / "collection",
        ),
    ),
    (
        "reproduce on a results folder another run holds",
        "in use by another percae run",
        lambda w: _held(w, _reproduce(w)),
    ),
    (
        "reproduce gpus per run without ray",
        "--executor ray",
        lambda w: _reproduce(w, "--gpus-per-run", "0.5"),
    ),
    (
        "reproduce ray with 0 cpus per run",
        "--cpus-per-run",
        lambda w: _reproduce(w, "--executor", "ray", "--cpus-per-run", "0"),
    ),
    (
        "reproduce unknown model",
        "--models: 'GAN' is not a model; models are AE, VAE",
        lambda w: _reproduce(w, "--models", "AE,GAN"),
    ),
    ("reproduce out is a file", "out", lambda w: _reproduce(w, out=w.file("afile"))),
    ("reproduce out under a file", "out", lambda w: _reproduce(w, out=w.file("afile") / "s")),
    (
        "reproduce other settings in out",
        "other settings",
        lambda w: (_study_with_other_settings(w), _reproduce(w))[1],
    ),
    (
        "reproduce stl10 without root",
        "--root",
        lambda w: ["reproduce", "stl10", "--out", w.tmp / "study"],
    ),
    (
        "reproduce svhn in an empty folder",
        "SVHN",
        lambda w: [
            "reproduce",
            "svhn",
            "--root",
            _mkdir(w.tmp / "svhn"),
            "--out",
            w.tmp / "study",
            "--perceptual-net",
            "alexnet-random",
        ],
    ),
    (
        "reproduce svhn with wrong variable names",
        "images",
        lambda w: [
            "reproduce",
            "svhn",
            "--root",
            _svhn_wrong_names(w),
            "--out",
            w.tmp / "study",
            "--perceptual-net",
            "alexnet-random",
        ],
    ),
    (
        "reproduce folder missing",
        "not a folder",
        lambda w: ["reproduce", "folder", "--root", w.tmp / "none", "--out", w.tmp / "study"],
    ),
    # --- percae reproduce: nonsense data refused before any file
    (
        "reproduce NaN position",
        "positions.npy",
        lambda w: _reproduce(w, root=_positions(None, _nan_positions)(w)),
    ),
    (
        "reproduce inf position",
        "positions.npy",
        lambda w: _reproduce(
            w,
            root=_positions(None, lambda p: np.where(np.arange(len(p))[:, None] == 5, np.inf, p))(
                w
            ),
        ),
    ),
    (
        "reproduce text in positions.npy",
        "positions.npy",
        lambda w: _reproduce(
            w, root=_collection_with(w, "positions.npy", lambda f: np.save(f, np.array(["a"] * 3)))
        ),
    ),
    (
        "reproduce positions of another length",
        "length",
        lambda w: _reproduce(w, root=_positions(None, lambda p: p[:-1])(w)),
    ),
    (
        "reproduce non-UTF-8 meta.json",
        "meta.json",
        lambda w: _reproduce(
            w, root=_collection_with(w, "meta.json", lambda f: f.write_bytes(b"\xff\xfe{}"))
        ),
    ),
    (
        "reproduce meta.json without unaltered_rollouts",
        "unaltered_rollouts",
        lambda w: _reproduce(
            w, root=_collection_with(w, "meta.json", _meta(lambda m: m.pop("unaltered_rollouts")))
        ),
    ),
    ("reproduce empty collection", "no frames", lambda w: _reproduce(w, root=_empty_collection(w))),
    (
        "reproduce root is a results folder",
        "it holds a percae study's results",
        lambda w: _reproduce(w, root=_with(_mkdir(w.tmp / "old"), "study_config.json", b"{}")),
    ),
    (
        "reproduce single-class folder",
        "class",
        lambda w: [
            "reproduce",
            "folder",
            "--root",
            _image_folder(w, ["cats"]),
            "--out",
            w.tmp / "study",
            "--preset",
            "quick",
        ],
    ),
    (
        "reproduce stl10 label out of range",
        "label",
        lambda w: [
            "reproduce",
            "stl10",
            "--root",
            _stl(w, [1, 2, 11, 5]),
            "--out",
            w.tmp / "study",
            "--preset",
            "quick",
        ],
    ),
    # --- percae report
    (
        "reproduce --config of the wrong type",
        "epochs must be an integer",
        lambda w: [
            "reproduce",
            "--config",
            w.file("c.json", b'{"dataset": "lunarlander", "train": {"epochs": "5"}}'),
            "--out",
            w.tmp / "study",
        ],
    ),
    (
        "reproduce --config of an unknown preset",
        "preset: unknown value 'huge'",
        lambda w: [
            "reproduce",
            "--config",
            w.file("c.json", b'{"dataset": "lunarlander", "preset": "huge"}'),
            "--out",
            w.tmp / "study",
        ],
    ),
    (
        "reproduce --config not JSON",
        "c.json",
        lambda w: ["reproduce", "--config", w.file("c.json", b"{"), "--out", w.tmp / "study"],
    ),
    (
        "reproduce --config of another dataset",
        "not stl10",
        lambda w: [
            "reproduce",
            "stl10",
            "--config",
            w.file("c.json", b'{"dataset": "lunarlander"}'),
            "--out",
            w.tmp / "s",
        ],
    ),
    (
        "reproduce --config and --preset",
        "--preset and --config",
        lambda w: [
            "reproduce",
            "--config",
            w.file("c.json", b'{"dataset": "lunarlander"}'),
            "--preset",
            "quick",
        ],
    ),
    (
        "reproduce neither dataset nor --config",
        "DATASET",
        lambda w: ["reproduce", "--out", w.tmp / "s"],
    ),
    (
        "reproduce --config nested 100 000 deep",
        "not a settings file",
        lambda w: [
            "reproduce",
            "--config",
            w.file("c.json", b"[" * 100_000 + b"]" * 100_000),
            "--out",
            w.tmp / "study",
        ],
    ),
    (
        "reproduce --config with a 5 000-digit integer",
        "not a settings file",
        lambda w: [
            "reproduce",
            "--config",
            w.file("c.json", b'{"dataset": "lunarlander", "ae_epochs": ' + b"9" * 5000 + b"}"),
            "--out",
            w.tmp / "study",
        ],
    ),
    (
        "reproduce --config /dev/zero",
        "not a regular file",
        lambda w: ["reproduce", "--config", "/dev/zero", "--out", w.tmp / "study"],
    ),
    (
        "reproduce --config a FIFO",
        "not a regular file",
        lambda w: ["reproduce", "--config", _fifo(w.tmp / "fifo"), "--out", w.tmp / "study"],
    ),
    (
        "reproduce --out inside --root",
        "inside --root",
        lambda w: _reproduce(w, root=w.copy_collection(), out=w.tmp / "collection" / "results"),
    ),
    (
        "reproduce --out equal to --root",
        "inside --root",
        lambda w: _reproduce(w, root=w.copy_collection(), out=w.tmp / "collection"),
    ),
    (
        "reproduce --tensorboard in a file",
        "--tensorboard",
        lambda w: _reproduce(w, "--tensorboard", w.file("tb")),
    ),
    ("report on no study", "no study", lambda w: ["report", _mkdir(w.tmp / "empty")]),
    (
        "report corrupt study_config.json",
        "study_config.json",
        lambda w: _report_with(w, "study_config.json", b"{broken"),
    ),
    (
        "report study_config.json wrong type",
        "z_sizes",
        lambda w: _report_with(w, "study_config.json", json.dumps({"z_sizes": "32"}).encode()),
    ),
    (
        "report corrupt train_result.json",
        "train_result.json",
        lambda w: _report_with(w, "runs/AE_z4_seed0/train_result.json", b"{broken"),
    ),
    (
        "report corrupt predictors.json",
        "predictors.json",
        lambda w: _report_with(w, "runs/AE_z4_seed0/predictors.json", b"\xff\xff"),
    ),
    (
        "report incomplete predictors.json",
        "predictors.json",
        lambda w: _report_with(
            w, "runs/AE_z4_seed0/predictors.json", json.dumps({"task": "position"}).encode()
        ),
    ),
    (
        "report corrupt baseline.json",
        "baseline.json",
        lambda w: _report_with(w, "baseline.json", b"nope"),
    ),
    *[
        (
            f"report {name.rsplit('/', 1)[-1]} with {path} = {text}",
            path.rsplit(".", 1)[-1],
            lambda w, n=name, p=path, t=text: _report_with_edit(w, n, p, t),
        )
        for name, path, text in (
            ("runs/AE_z4_seed0/predictors.json", "selected.mlp.test_metric", '"7.5"'),
            ("runs/AE_z4_seed0/predictors.json", "selected.mlp.test_metric", "NaN"),
            ("runs/AE_z4_seed0/predictors.json", "selected.linear.test_metric", "1e999"),
            ("runs/AE_z4_seed0/predictors.json", "selected.mlp.val_loss", "null"),
            ("runs/AE_z4_seed0/retrain/retrain.json", "l1_after", "0"),
            ("runs/AE_z4_seed0/retrain/retrain.json", "l1_after", '"0.1"'),
            ("runs/AE_z4_seed0/train_result.json", "images_per_s", "0"),
            ("runs/AE_z4_seed0/train_result.json", "images_per_s", "NaN"),
            ("runs/AE_z4_seed0/train_result.json", "seconds_per_epoch", '"fast"'),
            ("baseline.json", "baseline", '"x"'),
        )
    ],
    (
        "report truncated originals.npy",
        "originals.npy",
        lambda w: _report_with(
            w, "originals.npy", _npy_bytes(np.zeros((6, 64, 64, 3), np.uint8))[:90]
        ),
    ),
    (
        "report object-array reconstructions.npy",
        "reconstructions.npy",
        lambda w: _report_with_edit(w, "runs/AE_z4_seed0/retrain/reconstructions.npy", None, None),
    ),
    (
        "report notes.json that is a list",
        "notes.json",
        lambda w: _report_with(w, "notes.json", b"[1]"),
    ),
    (
        "report of a newer schema",
        "newer percae",
        lambda w: _report_with(
            w, "provenance.json", json.dumps({"schema": 99, "sessions": []}).encode()
        ),
    ),
]
CASES += [
    (
        f"{command} {option} {value}",
        option,
        lambda w, build=globals()[f"_{command}"], o=option, v=value: build(w, o, v),  # noqa: B008
    )
    for command, options in OPTION_CASES.items()
    for option, values in options.items()
    for value in values
]


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 this is not a state dict")
    return path.parent


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path.parent


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path.parent


def _remove(path: Path) -> Path:
    path.unlink()
    return path.parent


def _npy(w, array) -> Path:
    path = w.tmp / "images.npy"
    np.save(path, array, allow_pickle=True)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _with(folder: Path, name: str, content: bytes) -> Path:
    (folder / name).write_bytes(content)
    return folder


def _nonempty(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_1_and_leaves_the_folders_as_they_were(
    case, tmp_path, collection_path, good_run
):
    _, expected, build = case
    world = World(tmp_path, collection_path, good_run)
    args = [str(a) for a in build(world)]
    before, collection_before = snapshot(tmp_path), snapshot(collection_path)
    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    assert expected in lines[0], lines[0]
    assert snapshot(tmp_path) == before, "the refused command changed its folders"
    assert snapshot(collection_path) == collection_before


# --- The same mistakes through the Python API: a ConfigError (a ValueError) that names the setting.


def _api_wrong_type():
    from percae.training import TrainConfig

    TrainConfig.from_dict({"epochs": "5"})


def _api_wrong_type_direct():
    from percae.training import TrainConfig

    TrainConfig(epochs="5").validate()


def _api_encode_wrong_size(tiny_images):
    from percae.embeddings import encode_images

    encode_images(
        build_autoencoder(AutoencoderConfig("ae", 4, 80), seed=0), tiny_images, device="cpu"
    )


def _api_encode_batch_size_0(tiny_images):
    from percae.embeddings import encode_images

    encode_images(
        build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0),
        tiny_images,
        batch_size=0,
        device="cpu",
    )


def _api_encode_to_nan(tiny_images):
    from percae.embeddings import encode_images

    model = build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0)
    with torch.no_grad():
        model.mu.bias.fill_(float("inf"))
    encode_images(model, tiny_images, device="cpu")


def _grid(x_train, y_train, x_val, y_val, **config):
    from percae.predictors import PredictorConfig, fit_predictor_grid, predictor_grid

    fit_predictor_grid(
        x_train,
        y_train,
        x_val,
        y_val,
        specs=predictor_grid()[:1],
        config=PredictorConfig(device="cpu", **{"epochs": 1, **config}),
    )


_X, _Y = np.ones((8, 4), np.float32), np.ones((8, 2), np.float32)

API_CASES = [
    (
        "setting of the wrong type from JSON",
        "epochs must be an integer",
        lambda t: _api_wrong_type(),
    ),
    (
        "setting of the wrong type in code",
        "epochs must be an integer",
        lambda t: _api_wrong_type_direct(),
    ),
    ("encode images of another size", "80 px", _api_encode_wrong_size),
    ("encode batch size 0", "batch size", _api_encode_batch_size_0),
    ("encode to NaN embeddings", "NaN or inf", _api_encode_to_nan),
    (
        "X and y of different lengths",
        "8 training embeddings but 7",
        lambda t: _grid(_X, _Y[:7], _X, _Y),
    ),
    ("predictor batch size 0", "batch size", lambda t: _grid(_X, _Y, _X, _Y, batch_size=0)),
    ("predictor epochs -1", "epochs", lambda t: _grid(_X, _Y, _X, _Y, epochs=-1)),
    ("NaN in embeddings", "NaN or inf", lambda t: _grid(np.where(_X > 0, np.nan, _X), _Y, _X, _Y)),
    (
        "train epochs -1",
        "--epochs",
        lambda t: __import__("percae.training").training.TrainConfig(epochs=-1).validate(),
    ),
    ("unknown model kind", "kind", lambda t: AutoencoderConfig("gan", 4, 64).validate()),
    (
        "study of the wrong type",
        "z_sizes",
        lambda t: __import__("percae.study.config").study.config.StudyConfig(z_sizes=32).validate(),
    ),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_bad_input_through_the_api_is_a_clear_config_error(case, tiny_images):
    from percae.config import ConfigError

    _, expected, call = case
    with pytest.raises(ConfigError) as e:
        call(tiny_images)
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("command", ["train", "reproduce", "data", "encode"])
def test_a_read_only_folder_is_refused_in_one_line_before_any_work(
    command, tmp_path, collection_path, good_run, monkeypatch
):
    # The tests may run as root, whom permissions do not stop: the folder is made read-only
    # in what the operating system answers percae.
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode, *a, **k: False if Path(p) == readonly else real_access(p, mode, *a, **k),
    )
    world = World(readonly, collection_path, good_run)
    args = {
        "train": _train(world),
        "reproduce": _reproduce(world),
        "data": _data(world),
        "encode": _encode(world),
    }[command]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert (
        result.stderr.strip().splitlines() == [result.stderr.strip()]
        and "not writable" in result.stderr
    )
    assert not any(readonly.iterdir())


def test_report_into_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    import tempfile

    world = World(tmp_path, Path(), Path())
    args = _report_with(world, "notes.json", b'{"data": []}')

    def refuse(*a, dir=None, **k):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"Error: Permission denied: {tmp_path / 'study'}"
    )  # the file it could not write
