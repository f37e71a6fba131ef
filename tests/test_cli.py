"""The command line: `percae encode` writes what the Python API computes, and refuses
what it cannot do with one line and exit status 1, leaving no file behind."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from percae.cli import main
from percae.device import to_float_batch
from percae.model import AutoencoderConfig, build_autoencoder, save_autoencoder

from test_data_stl10 import intended_images, write_images, write_labels


def saved_run(tmp_path_factory, image_size):
    path = tmp_path_factory.mktemp("run")
    save_autoencoder(
        build_autoencoder(
            AutoencoderConfig(kind="ae", latent_dim=8, image_size=image_size), seed=0
        ),
        path,
    )
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return saved_run(tmp_path_factory, 64)


@pytest.fixture(scope="module")
def run_dir_96(tmp_path_factory):
    return saved_run(tmp_path_factory, 96)  # STL-10's size


def encode(*args):
    return CliRunner().invoke(main, ["encode", *map(str, args)])


@pytest.mark.slow
def test_encode_all_is_every_frame_of_a_collection_in_file_order(
    run_dir, collection_path, collection, tmp_path
):
    out = tmp_path / "z.npy"
    result = encode(
        "--run",
        run_dir,
        "--data",
        collection_path,
        "--part",
        "all",
        "--out",
        out,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    z = np.load(out)
    assert z.shape == (len(collection.images), 8)
    from percae.model import load_autoencoder

    model = load_autoencoder(run_dir)
    with torch.no_grad():
        for i in (0, len(z) - 1):
            x = to_float_batch(torch.from_numpy(np.array(collection.images[i : i + 1])))
            np.testing.assert_allclose(z[i], model.encode(x)[0].numpy(), rtol=1e-4, atol=1e-5)


@pytest.fixture
def stl_root(tmp_path):
    folder = tmp_path / "stl" / "stl10_binary"
    folder.mkdir(parents=True)
    write_images(folder / "unlabeled_X.bin", intended_images(6, 0))
    write_images(folder / "train_X.bin", intended_images(4, 1))
    write_labels(folder / "train_y.bin", np.array([1, 2, 10, 5]))
    write_images(folder / "test_X.bin", intended_images(3, 2))
    write_labels(folder / "test_y.bin", np.array([10, 1, 3]))
    return tmp_path / "stl"


def test_encode_all_is_refused_where_each_part_has_its_own_file(run_dir_96, stl_root, tmp_path):
    """STL-10's parts are three files: "all" would have meant the unlabeled one alone."""
    out = tmp_path / "z.npy"
    result = encode(
        "--run",
        run_dir_96,
        "--data",
        stl_root,
        "--dataset",
        "stl10",
        "--out",
        out,
        "--device",
        "cpu",
    )
    assert result.exit_code == 1
    assert (
        "--part all" in result.output and "--part autoencoder, predictor or test" in result.output
    )
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    result = encode(
        "--run",
        run_dir_96,
        "--data",
        stl_root,
        "--dataset",
        "stl10",
        "--part",
        "test",
        "--out",
        out,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == (3, 8)


def test_encode_refuses_an_existing_output(run_dir, collection_path, tmp_path):
    out = tmp_path / "z.npy"
    out.write_bytes(b"keep me")
    result = encode("--run", run_dir, "--data", collection_path, "--out", out, "--device", "cpu")
    assert result.exit_code == 1 and "exists" in result.output
    assert out.read_bytes() == b"keep me"


@pytest.mark.slow
def test_train_perceptual_without_a_network_offline_is_refused_in_one_line_before_any_file(
    collection_path, tmp_path, empty_torch_home, no_network
):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(collection_path),
            "--out",
            str(out),
            "--z",
            "4",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--loss",
            "perceptual",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "--perceptual-weights PATH" in line and "--perceptual-net alexnet-random" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "net, message",
    [
        ("torchvision:alexnet:relu9_9", "alexnet has no layer 'relu9_9'"),
        ("torchvision:nosuchnet:relu1_1", "no classification architecture 'nosuchnet'"),
        ("nosuchnet", "unknown perceptual network 'nosuchnet'"),
    ],
)
@pytest.mark.slow
def test_a_bad_network_spec_is_one_line_before_any_file(net, message, collection_path, tmp_path):
    for args in (
        [
            "train",
            "--data",
            str(collection_path),
            "--out",
            str(tmp_path / "run"),
            "--loss",
            "perceptual",
        ],
        [
            "reproduce",
            "lunarlander",
            "--preset",
            "quick",
            "--root",
            str(collection_path),
            "--out",
            str(tmp_path / "study"),
        ],
    ):
        result = CliRunner().invoke(main, [*args, "--perceptual-net", net])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "option, value", [("--lr", "inf"), ("--lr", "nan"), ("--kl-weight", "nan")]
)
def test_train_refuses_non_finite_settings_in_one_line(option, value, collection_path, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(collection_path),
            "--out",
            str(out),
            "--model",
            "vae",
            option,
            value,
        ],
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "Traceback" not in result.output
    assert not out.exists()


def test_a_diverged_training_is_one_line_and_no_finished_run(
    collection_path, tmp_path, monkeypatch
):
    import percae.training as training
    import percae.training.dataset as dataset_run

    def diverge(*args, **kwargs):
        raise training.TrainingDiverged(
            "training diverged at epoch 1 (training loss nan, validation loss nan)"
        )

    monkeypatch.setattr(dataset_run, "train_autoencoder", diverge)
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(collection_path),
            "--out",
            str(tmp_path / "run"),
            "--z",
            "4",
            "--epochs",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.output.strip().splitlines()[-1]
        == "Error: training diverged at epoch 1 (training loss nan, "
        "validation loss nan)"
    )


def _options(command) -> dict:
    return {p.name: p for p in command.params if isinstance(p, __import__("click").Option)}


@pytest.mark.parametrize(
    "command, config_class, not_settings",
    [
        # Where the study runs is not what it computes: those options are the executor's.
        (
            "reproduce",
            "percae.study.config:StudyConfig",
            {
                "out",
                "progress",
                "executor",
                "workers",
                "address",
                "cpus_per_run",
                "gpus_per_run",
                "config_file",
                "tensorboard_dir",
            },
        ),
        # What is trained on, and the model: the data and AutoencoderConfig, not the training's
        # settings.
        (
            "train",
            "percae.training:TrainConfig",
            {"data_root", "dataset", "out", "model", "z", "image_size", "tensorboard_dir"},
        ),
        ("data lunarlander", "percae.data.lunarlander:LunarLanderConfig", {"out"}),
    ],
)
def test_every_option_of_a_command_is_the_setting_of_that_name(command, config_class, not_settings):
    """A setting is named in its dataclass and in the option that sets it, nowhere else: each
    command passes its options to the config by name, so each must be a field (PART__NAME: the
    field NAME of the config's part PART)."""
    import dataclasses
    import importlib

    module, name = config_class.split(":")
    config = getattr(importlib.import_module(module), name)()
    group = main
    for word in command.split():
        group = group.commands[word]
    options = set(_options(group)) - not_settings
    unknown = []
    for option in options:
        *parts, field = option.split("__")
        owner = config
        for part in parts:
            owner = getattr(owner, part, None)
        if owner is None or field not in {f.name for f in dataclasses.fields(owner)}:
            unknown.append(option)
    assert unknown == []
    assert len(options) >= 4
    if command == "reproduce":
        assert {"train__kl_weight", "train__epochs", "predictor__epochs"} <= options


def test_every_study_setting_reaches_the_training_and_predictor_configs():
    """StudyConfig's sub-configs take each of its settings where `train_config`,
    `retrain_config`, `predictor_config` and `lunarlander_config` put them: every value below
    is distinct, so a setting copied into the wrong place or left at its default shows."""
    from percae.predictors import PredictorConfig
    from percae.study.config import StudyConfig
    from percae.training import TrainConfig
    from percae.data.lunarlander import LunarLanderConfig

    # As `reproduce` passes its options: by their parameter names.
    study = StudyConfig().updated(
        train__epochs=11,
        predictor__epochs=12,
        retrain_epochs=13,
        train__batch_size=14,
        predictor__batch_size=15,
        train__kl_weight=0.25,
        train__perceptual_net="alexnet-random",
        train__perceptual_weights="w.pt",
        rollouts=16,
        steps=17,
        seed=18,
        train__device="cpu",
        train__perceptual_scale=7.5,
        train__lr=0.02,
    )
    assert study.train_config("P.VAE", 5) == TrainConfig(
        loss="perceptual",
        perceptual_net="alexnet-random",
        perceptual_weights="w.pt",
        kl_weight=0.25,
        epochs=11,
        batch_size=14,
        seed=5,
        device="cpu",
        perceptual_scale=7.5,
        lr=0.02,
    )
    assert study.retrain_config("P.VAE", 5) == TrainConfig(
        loss="pixel",
        perceptual_net="alexnet-random",
        perceptual_weights="w.pt",
        kl_weight=0.25,
        epochs=13,
        batch_size=14,
        seed=5,
        device="cpu",
        perceptual_scale=7.5,
        lr=0.02,
    )
    assert study.predictor_config(6) == PredictorConfig(
        epochs=12, batch_size=15, seed=6, device="cpu"
    )
    with pytest.raises(__import__("percae.config").config.ConfigError, match="no setting epoch"):
        StudyConfig().updated(train__epoch=3)
    # No image size set: the collection's own 64 px, not None.
    assert study.lunarlander_config() == LunarLanderConfig(
        rollouts=16, steps=17, image_size=64, seed=18
    )
    assert StudyConfig(image_size=80).lunarlander_config().image_size == 80


@pytest.mark.parametrize(
    "command, config_class",
    [
        ("train", "percae.training:TrainConfig"),
        ("data lunarlander", "percae.data.lunarlander:LunarLanderConfig"),
    ],
)
def test_a_command_option_that_is_a_config_setting_leaves_its_default_to_the_config(
    command, config_class
):
    """An option not given is None, so that the setting's one default is the dataclass's."""
    import dataclasses
    import importlib

    module, name = config_class.split(":")
    fields = {f.name for f in dataclasses.fields(getattr(importlib.import_module(module), name))}
    group = main
    for word in command.split():
        group = group.commands[word]
    shared = {key: option for key, option in _options(group).items() if key in fields}
    assert len(shared) >= 5
    assert {key: option.default for key, option in shared.items()} == dict.fromkeys(shared)


def test_train_with_few_options_saves_the_training_defaults(collection_path, tmp_path):
    from percae.training import TrainConfig

    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(collection_path), "--out", str(out), "--epochs", "1"],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "train_config.json").read_text())
    defaults = TrainConfig()
    for key in ("loss", "kl_weight", "batch_size", "lr", "seed", "patience", "amp"):
        assert saved[key] == getattr(defaults, key), key
    assert json.loads((out / "model_config.json").read_text())["latent_dim"] == 64


@pytest.mark.parametrize("args", [[], ["data"]])
def test_a_group_alone_prints_its_help(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "Usage:" in result.output and "Error" not in result.output


def test_python_dash_m_percae_is_the_command_line():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "percae", "reproduce", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--executor" in result.stdout


@pytest.mark.parametrize(
    "args",
    [["train", "--help"], ["reproduce", "--help"], ["data", "lunarlander", "--help"], ["train"]],
)
def test_help_and_usage_errors_do_not_load_torch(args):
    """Help comes at once: torch (1-2 s to import) loads only for work."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom percae.cli import main\ntry:\n    main(%r)\n"
        "except SystemExit:\n    pass\n"
        "print('torch' in sys.modules)" % args
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stdout + result.stderr


def test_encode_a_npy_file_of_images(run_dir, collection, tmp_path):
    from percae.embeddings import encode_images
    from percae.model import load_autoencoder

    pixels = np.array(collection.images[:10])
    np.save(tmp_path / "mine.npy", pixels)
    out = tmp_path / "z.npy"
    result = encode(
        "--run", run_dir, "--data", tmp_path / "mine.npy", "--out", out, "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(
        np.load(out), encode_images(load_autoencoder(run_dir), pixels, device="cpu")
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "flag, progress_shown", [(None, True), ("--quiet", False), ("--verbose", True)]
)
def test_progress_lines_go_through_the_percae_logger(
    flag, progress_shown, collection_path, tmp_path
):
    args = ([flag] if flag else []) + [
        "train",
        "--data",
        str(collection_path),
        "--out",
        str(tmp_path / "run"),
        "--z",
        "4",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert ("epoch   2/2" in result.output) == progress_shown
    assert "best epoch" in result.output  # the result itself is printed whatever the level


def test_the_api_logs_to_the_percae_logger(tiny_split, caplog, monkeypatch):
    import logging

    from percae.training import TrainConfig, train_autoencoder

    # As in a program of one's own: the CLI's handler (an earlier test's) is not there.
    monkeypatch.setattr(logging.getLogger("percae"), "handlers", [])
    monkeypatch.setattr(logging.getLogger("percae"), "propagate", True)
    train, val = tiny_split
    with caplog.at_level(logging.INFO, logger="percae"):
        train_autoencoder(
            build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0),
            train,
            val,
            TrainConfig(epochs=1, batch_size=16, device="cpu"),
            progress=False,
        )
    assert [r.name for r in caplog.records] == [
        "percae.training.loop"
    ] and "epoch   1/1" in caplog.records[0].message


@pytest.mark.slow
def test_reproduce_config_reruns_a_saved_study_with_exactly_its_settings(collection_path, tmp_path):
    """A study's own study_config.json, given to --config, makes the same study: the same
    settings to the byte (the resolved network too) and the same results; an option given
    beside it changes that setting alone."""

    first, again, changed = tmp_path / "first", tmp_path / "again", tmp_path / "changed"
    result = CliRunner().invoke(
        main,
        [
            "reproduce",
            "lunarlander",
            "--preset",
            "quick",
            "--root",
            str(collection_path),
            "--out",
            str(first),
            "--z",
            "4",
            "--models",
            "AE",
            "--seeds",
            "2",
            "--epochs",
            "1",
            "--predictor-epochs",
            "5",
            "--retrain-epochs",
            "0",
            "--kl-weight",
            "0.5",
            "--device",
            "cpu",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = first / "study_config.json"
    result = CliRunner().invoke(
        main, ["reproduce", "--config", str(saved), "--out", str(again), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert (again / "study_config.json").read_bytes() == saved.read_bytes()
    # The first run chose the offline network and noted why; the rerun names it, with nothing to
    # note.
    timing = {
        "seconds_per_epoch",
        "images_per_second",
        "perceptual_overhead",
        "perceptual_overhead_std",
        "provenance",
        "perceptual_net_note",
    }
    a, b = (json.loads((f / "summary.json").read_text()) for f in (first, again))
    assert {k: v for k, v in a.items() if k not in timing} == {
        k: v for k, v in b.items() if k not in timing
    }

    result = CliRunner().invoke(
        main,
        [
            "reproduce",
            "--config",
            str(saved),
            "--out",
            str(changed),
            "--seeds",
            "1",
            "--predictor-epochs",
            "6",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    before, after = (json.loads(f.read_text()) for f in (saved, changed / "study_config.json"))
    assert {k for k in before if before[k] != after[k]} == {"seeds", "predictor"}
    assert {k for k in before["predictor"] if before["predictor"][k] != after["predictor"][k]} == {
        "epochs"
    }
    assert (
        after["seeds"] == [0]
        and after["predictor"]["epochs"] == 6
        and after["train"]["kl_weight"] == 0.5
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, status, word", [(15, 143, "terminated (SIGTERM)"), (2, 130, "interrupted")]
)
def test_sigterm_and_sigint_end_in_one_line_and_the_rerun_resumes(
    signum, status, word, collection_path, tmp_path
):
    import os
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "percae",
        "train",
        "--data",
        str(collection_path),
        "--out",
        str(out),
        "--z",
        "4",
        "--epochs",
        "12",
        "--batch-size",
        "16",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = start_as_from_a_terminal(args)
    start = time.monotonic()
    while not (out / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() - start < 120
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status
    lines = [line for line in err.strip().splitlines() if not line.startswith(("epoch", "\r"))]
    assert lines[-1] == f"Error: {word}; rerun the same command to resume (finished work is kept)"
    assert "Traceback" not in err and not list(out.glob(".*.tmp"))
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0 and "resuming from epoch" in resumed.stdout


def test_a_library_error_raised_while_an_interrupt_unwinds_ends_as_the_interrupt(
    tmp_path, monkeypatch
):
    """A library whose clean-up fails because a Ctrl-C cut it off (matplotlib's PDF writer
    raises AttributeError) ends as the interrupt does: one line, exit 130, no traceback."""
    import percae.report

    def cut_off(results):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise AttributeError("'Stream' object has no attribute 'pos'") from None

    monkeypatch.setattr(percae.report, "write_report", cut_off)
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines() == [
        "Error: interrupted; rerun the same command to resume (finished work is kept)"
    ]


@pytest.mark.slow
def test_python_m_percae_interrupted_inside_code_made_from_a_string_exits_130(tmp_path):
    """`python -m percae` interrupted while a library runs code it made from a string (a
    dataclass or namedtuple being defined, as on import) ends as any interrupt: one line, exit
    130, not killed by SIGINT at exit."""
    import sys

    (tmp_path / "program.py").write_text(
        "import sys\n"
        "import percae.report\n"
        "from percae.cli import run\n"
        "def write_report(results):\n"
        "    exec('raise KeyboardInterrupt')\n"
        "percae.report.write_report = write_report\n"
        f"sys.argv = ['percae', 'report', {str(tmp_path)!r}]\n"
        "run()\n"
    )
    proc = start_as_from_a_terminal([sys.executable, "-m", "program"], cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip() == (
        "Error: interrupted; rerun the same command to resume (finished work is kept)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("moment", ["exit callbacks", "module unloading"])
def test_a_signal_while_the_interpreter_winds_down_after_the_command_changes_nothing(
    signum, moment, tmp_path
):
    """A Ctrl-C or SIGTERM that arrives after the command has ended, while Python runs its exit
    callbacks or unloads modules (a second or so with torch loaded), leaves the exit status and
    the output as they were: no traceback, no death by the signal."""
    import sys

    def program(entry: str) -> int | str:
        script = tmp_path / f"{entry}.py"
        script.write_text(
            "import atexit, os, sys\n"
            f"from percae.cli import {entry}\n"
            "class SignalWhenCollected:\n"
            f"    def __del__(self, kill=os.kill, pid=os.getpid()): kill(pid, {int(signum)})\n"
            + (
                f"atexit.register(os.kill, os.getpid(), {int(signum)})\n"
                if moment == "exit callbacks"
                else "collected_while_unloading = SignalWhenCollected()\n"
            )
            + f"sys.argv = ['percae', '--version']\n{entry}()\n"
        )
        proc = start_as_from_a_terminal([sys.executable, str(script)])
        _, err = proc.communicate(timeout=60)
        return proc.returncode if proc.returncode else err

    assert program("run") == ""
    # the click group alone (what `run` adds to) dies by the signal or prints a traceback: the
    # moment is one where the signal matters
    without = program("main")
    assert without == -signum or "KeyboardInterrupt" in without, without


def test_a_generated_collection_follows_the_umask(tmp_path):
    import os

    from percae.data.lunarlander import LunarLanderConfig, generate_lunarlander

    previous = os.umask(0o022)
    try:
        path = generate_lunarlander(
            tmp_path / "c", LunarLanderConfig(rollouts=5, steps=5, workers=1), progress=False
        )
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o755
    assert (path / "images.npy").stat().st_mode & 0o777 == 0o644


def start_as_from_a_terminal(command: list[str], cwd=None):
    """`command` (OMP_NUM_THREADS=1) in a session of its own, stderr piped, with SIGINT at its
    default as from a terminal: a test runner started in the background of a shell without job
    control inherits SIGINT ignored, and a Python started so never raises KeyboardInterrupt."""
    import os
    import signal
    import subprocess

    return subprocess.Popen(
        command,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        cwd=cwd,
    )


def processes_in_sessions(sessions: set[int]) -> list[str]:
    """The processes still alive in these sessions (each started process leads its own): what a
    killed percae would have left running (generation workers, Ray)."""
    import os

    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) in sessions:  # state, ..., session id
            alive.append(pid)
    return alive


@pytest.mark.slow
def test_kill_9_and_ctrl_c_at_random_moments_leave_nothing_and_the_rerun_ends_as_one_run(
    tmp_path,
):
    """A study with its collection generated, killed (SIGKILL) or interrupted (SIGINT) at seeded
    random moments, then run to its end: no temporary file or folder, no process left, and the
    summary of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def command(out):
        return [
            sys.executable, "-m", "percae", "reproduce", "lunarlander", "--preset", "quick",
            "--root", f"{out}-collection", "--rollouts", "6", "--steps", "30",
            "--models", "AE,P.AE", "--seeds", "1", "--z", "4", "--epochs", "2",
            "--predictor-epochs", "5", "--device", "cpu", "--no-progress", "--out", str(out),
        ]  # fmt: skip

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    timing = {"seconds_per_epoch", "images_per_second", "perceptual_overhead"}

    def summary(out):
        data = json.loads((out / "summary.json").read_text())
        del data["config"]["root"]  # each its own collection, generated alike
        return {k: v for k, v in data.items() if not any(t in k for t in timing)}

    start = time.monotonic()
    subprocess.run(command(tmp_path / "whole"), env=env, check=True, capture_output=True)
    whole = time.monotonic() - start

    out, sessions, rng = tmp_path / "killed", set(), np.random.default_rng(7)
    signals = [signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGINT, signal.SIGKILL]
    stopped = []
    for signum in signals:
        proc = start_as_from_a_terminal(command(out))
        sessions.add(proc.pid)
        time.sleep(rng.uniform(0.5, 0.6 * whole))
        if proc.poll() is not None:
            break
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        stopped.append(signum)
        if signum == signal.SIGINT:
            assert proc.returncode in (130, 0), err[-2000:]
            assert "Traceback" not in err
    assert len(stopped) >= 2, "test setup: the study ended before it could be interrupted"
    rerun = subprocess.run(command(out), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    assert summary(out) == summary(tmp_path / "whole")
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".partial" in p.name] + [
        p for p in out.parent.iterdir() if ".partial" in p.name
    ]
    assert not leftovers
    time.sleep(1)
    assert not processes_in_sessions(sessions)


@pytest.mark.slow
def test_probe_and_export_killed_at_random_moments_resume_with_the_same_command(
    tmp_path, tiny_split
):
    """kill -9 or Ctrl-C during a probe or an export, then the same command: the result of an
    uninterrupted run, and nothing of the killed ones left (no temporary file, no partial
    folder)."""
    import signal
    import subprocess
    import sys
    import time

    from percae.training import TrainConfig, train_autoencoder

    g = np.random.default_rng(0)
    y = g.normal(size=(400, 2)).astype(np.float32)
    np.save(tmp_path / "z.npy", np.concatenate([y, g.normal(size=(400, 6))], 1).astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "g.npy", np.repeat(np.arange(40), 10))
    train, val = tiny_split
    train_autoencoder(
        build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0), train, val,
        TrainConfig(epochs=1, batch_size=16, device="cpu"), run_dir=tmp_path / "run",
        progress=False, log=None,
    )  # fmt: skip

    def probe(out):
        return [
            sys.executable, "-m", "percae", "probe", "--embeddings", str(tmp_path / "z.npy"),
            "--targets", str(tmp_path / "y.npy"), "--groups", str(tmp_path / "g.npy"),
            "--seeds", "4", "--predictor-epochs", "30", "--device", "cpu", "--no-progress",
            "--out", str(out),
        ]  # fmt: skip

    def export(out):
        return [sys.executable, "-m", "percae", "export", str(tmp_path / "run"), "--out", str(out)]

    rng = np.random.default_rng(3)
    for command, result in ((probe, "probe.json"), (export, "model.safetensors")):
        start = time.monotonic()
        subprocess.run(command(tmp_path / f"whole-{result}"), check=True, capture_output=True)
        whole = time.monotonic() - start
        out = tmp_path / f"killed-{result}"
        for signum in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
            proc = start_as_from_a_terminal(command(out))
            time.sleep(rng.uniform(0.3, max(0.4, 0.9 * whole)))
            if proc.poll() is None:
                proc.send_signal(signum)
            _, err = proc.communicate(timeout=120)
            assert "Traceback" not in err, err[-2000:]
            if proc.returncode not in (0, -9, 130):
                pytest.fail(f"exit {proc.returncode}: {err[-500:]}")
            if proc.returncode == 0:
                break  # it ended before the signal: its result must be whole
        rerun = subprocess.run(command(out), capture_output=True, text=True, timeout=600)
        if (
            rerun.returncode
            and "finished probe" not in rerun.stderr
            and "not empty" not in rerun.stderr
        ):
            pytest.fail(rerun.stderr[-2000:])
        whole_files = sorted(p.name for p in (tmp_path / f"whole-{result}").rglob("*"))
        assert sorted(p.name for p in out.rglob("*")) == whole_files
        if result == "probe.json":
            a, b = (
                json.loads((d / result).read_text()) for d in (out, tmp_path / f"whole-{result}")
            )
            assert a == b
        leftovers = [
            p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or ".partial" in p.name
        ]
        assert not leftovers


def test_a_second_train_probe_or_encode_into_a_folder_in_use_is_refused(collection_path, tmp_path):
    """While one percae holds --out (here this test, as a first run would), a second train,
    probe or encode into it is refused in one line, and writes nothing there."""
    from percae.files import exclusive_use

    np.save(tmp_path / "z.npy", np.zeros((30, 2), np.float32))
    np.save(tmp_path / "y.npy", np.zeros((30, 2), np.float32))
    commands = {
        "train": ["train", "--data", str(collection_path), "--z", "4", "--epochs", "1"],
        "probe": ["probe", "--embeddings", str(tmp_path / "z.npy"),
                  "--targets", str(tmp_path / "y.npy")],
    }  # fmt: skip
    for name, args in commands.items():
        out = tmp_path / f"{name}-out"
        out.mkdir()
        with exclusive_use(out):
            result = CliRunner().invoke(main, [*args, "--out", str(out)])
        assert result.exit_code == 1, result.output
        assert "is in use by another percae run" in result.output
        assert list(out.iterdir()) == []


def test_an_export_beside_a_live_one_is_refused_and_a_killed_one_s_partial_removed(tmp_path):
    import os
    import socket

    from percae.files import OWNER
    from percae.training import TrainConfig, train_autoencoder

    g = torch.Generator().manual_seed(0)
    images = (torch.rand(40, 64, 64, 3, generator=g) * 255).byte().numpy()
    from percae.data import ImageSet

    train_autoencoder(
        build_autoencoder(AutoencoderConfig("ae", 4, 64), seed=0), ImageSet(images[:30]),
        ImageSet(images[30:]), TrainConfig(epochs=1, batch_size=16, device="cpu"),
        run_dir=tmp_path / "run", progress=False, log=None,
    )  # fmt: skip
    live = tmp_path / ".shared.partial.live"
    live.mkdir()
    (live / OWNER).write_text(f"{socket.gethostname()} {os.getppid()}")  # a live process
    result = CliRunner().invoke(
        main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "shared")]
    )
    assert result.exit_code == 1 and "another percae is exporting into" in result.output
    assert not (tmp_path / "shared").exists()
    (live / OWNER).write_text(f"{socket.gethostname()} 999999999")  # its writer gone
    (live / "model.safetensors.tmp").write_bytes(b"x" * 4096)
    result = CliRunner().invoke(
        main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "shared")]
    )
    assert result.exit_code == 0, result.output
    assert not live.exists() and (tmp_path / "shared" / "model.safetensors").exists()
