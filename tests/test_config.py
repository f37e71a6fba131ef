"""Typed configuration: JSON round-trips refuse what the dataclass does not declare, and
no file percae writes holds NaN or infinity (not standard JSON)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from percae.config import ConfigError
from percae.files import atomic_write_bytes, atomic_write_json
from percae.study.config import StudyConfig
from percae.training import TrainConfig


def test_a_config_round_trips_through_json(tmp_path):
    config = StudyConfig(
        z_sizes=(32, 64), seeds=(0, 2), image_size=80, train=TrainConfig(kl_weight=0.25, epochs=3)
    )
    config.save(tmp_path / "c.json")
    assert StudyConfig.load(tmp_path / "c.json") == config
    assert json.loads((tmp_path / "c.json").read_text())["train"]["kl_weight"] == 0.25


def test_a_study_config_of_the_flat_schema_is_read_into_its_parts(tmp_path):
    """study_config.json as results schema 1 wrote it (settings of the training and of the
    predictors beside the study's) still loads, each setting where it now lives."""
    flat = {
        "dataset": "lunarlander",
        "preset": "quick",
        "z_sizes": [32],
        "models": ["AE", "P.AE"],
        "ae_epochs": 2,
        "predictor_epochs": 300,
        "retrain_epochs": 0,
        "batch_size": 16,
        "ae_lr": 0.002,
        "predictor_batch_size": 256,
        "kl_weight": 0.001,
        "perceptual_net": "alexnet-random",
        "perceptual_weights": None,
        "perceptual_scale": "auto",
        "rollouts": 200,
        "seed": 1,
        "seeds": [1, 2, 3],
        "device": "cpu",
    }
    (tmp_path / "study_config.json").write_text(json.dumps(flat))
    study = StudyConfig.load(tmp_path / "study_config.json")
    assert study.train == TrainConfig(
        perceptual_net="alexnet-random",
        perceptual_scale="auto",
        kl_weight=0.001,
        epochs=2,
        batch_size=16,
        lr=0.002,
        device="cpu",
    )
    assert (study.predictor.epochs, study.predictor.batch_size) == (300, 256)
    assert (study.retrain_epochs, study.rollouts, study.seeds) == (0, 200, (1, 2, 3))
    # Settings a schema-1 file leaves out take the study's defaults: the paper's loss.
    old = StudyConfig.from_dict({"dataset": "lunarlander", "ae_epochs": 7})
    assert (old.train.epochs, old.train.kl_weight, old.train.perceptual_scale) == (7, 0.01, 1.0)
    with pytest.raises(ConfigError, match="kl_weight must be a number"):
        StudyConfig.from_dict({"dataset": "lunarlander", "kl_weight": "high"})


def test_a_part_given_in_part_changes_only_those_settings_of_the_studys_part():
    study = StudyConfig.from_dict({"dataset": "lunarlander", "train": {"epochs": 3}})
    assert study.train == replace(StudyConfig().train, epochs=3)
    with pytest.raises(ConfigError, match="unknown setting"):
        StudyConfig.from_dict({"dataset": "lunarlander", "train": {"epoch": 3}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"epochs": "5"}, "epochs must be an integer"),
        ({"epochs": 5.5}, "epochs must be an integer"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"lr": "fast"}, "lr must be a number"),
        ({"amp": 1}, "amp must be true or false"),
        ({"patience": "3"}, "patience must be an integer or null"),
        ({"depth": 3}, "unknown setting(s) depth"),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_by_name(data, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(data)
    assert message in str(e.value)


def test_a_list_setting_checks_its_items():
    assert StudyConfig.from_dict({"z_sizes": [32, 64]}).z_sizes == (32, 64)
    with pytest.raises(ConfigError, match="z_sizes"):
        StudyConfig.from_dict({"z_sizes": [32, "64"]})
    # An integer where a number is declared is that number.
    assert TrainConfig.from_dict({"lr": 1}).lr == 1.0 and isinstance(
        TrainConfig.from_dict({"lr": 1}).lr, float
    )


def test_a_config_file_that_is_not_an_object_or_not_utf8_is_one_clear_error(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected an object"):
        TrainConfig.load(tmp_path / "list.json")
    (tmp_path / "bytes.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.load(tmp_path / "bytes.json")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_json_with_nan_or_infinity_is_never_written(value, tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"old": 1}\n')
    with pytest.raises(ValueError, match=r"runs\.0\.loss"):
        atomic_write_json(path, {"runs": [{"loss": value}]})
    assert json.loads(path.read_text()) == {"old": 1}  # the previous content stays
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left


def test_lists_and_numpy_numbers_are_settings_too():
    import numpy as np

    assert StudyConfig(z_sizes=[32, 64], models=["AE"]).validate() is None
    config = TrainConfig(seed=np.int64(1), lr=np.float32(0.5))
    config.validate()
    assert json.loads(json.dumps(config.to_dict()))["seed"] == 1  # plain JSON numbers


def test_files_are_written_with_the_usual_permissions(tmp_path):
    import stat

    from percae.files import UMASK

    atomic_write_json(tmp_path / "a.json", {"x": 1})
    # mkstemp makes its files private; a result a group shares must stay readable to it.
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~UMASK


def test_an_existing_output_folder_needs_no_writable_parent(tmp_path, monkeypatch):
    import os

    from percae.files import check_output_folder

    folder = tmp_path / "mine"
    folder.mkdir()
    real = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode, *a, **k: (
            False if os.fspath(p) == os.fspath(tmp_path) else real(p, mode, *a, **k)
        ),
    )  # a read-only parent, as /scratch or /tmp's
    assert check_output_folder(folder) == folder
    with pytest.raises(ConfigError, match="not writable"):
        check_output_folder(tmp_path / "new")


def test_a_default_is_written_once():
    """The study's training and predictors are TrainConfig and PredictorConfig with their own
    defaults, but for the paper's loss (study.config.paper_training); a study setting that is
    a collection's reads the collection's default; a preset sets only what differs."""
    import ast
    import dataclasses
    import inspect

    from percae.data.lunarlander import LunarLanderConfig
    from percae.predictors import PredictorConfig
    from percae.study import presets as study_module

    study = StudyConfig()
    changed = {
        f.name
        for f in dataclasses.fields(TrainConfig)
        if getattr(study.train, f.name) != getattr(TrainConfig(), f.name)
    }
    assert changed == {"kl_weight", "perceptual_scale"}
    assert study.predictor == PredictorConfig()
    tree = ast.parse(inspect.getsource(StudyConfig))
    shared = {"rollouts", "steps", "seed"}  # the collection's settings of the same name
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and node.target.id in shared:
            default = node.value.args[0] if isinstance(node.value, ast.Call) else node.value
            assert not isinstance(default, ast.Constant), node.target.id
            assert getattr(study, node.target.id) == getattr(LunarLanderConfig(), node.target.id)

    defaults = study.to_dict()
    restated = []
    for dataset, presets in study_module.PRESETS.items():
        for preset, values in presets.items():
            for key, value in values.items():
                if isinstance(value, dict):
                    restated += [
                        f"{dataset} {preset}: {key}.{k}"
                        for k, v in value.items()
                        if defaults[key][k] == v
                    ]
                elif key in defaults and defaults[key] in (
                    value,
                    list(value) if isinstance(value, tuple) else value,
                ):
                    restated.append(f"{dataset} {preset}: {key}")
    assert restated == []


def test_a_folder_in_use_is_refused_to_a_second_user_and_free_again_after(tmp_path):
    from percae.files import exclusive_use

    with exclusive_use(tmp_path):
        with pytest.raises(ConfigError, match="in use by another percae run"):
            with exclusive_use(tmp_path):
                pass
    with exclusive_use(tmp_path):  # released when the first ended
        pass


def test_an_older_schemas_files_keep_their_meaning():
    """A flat study_config.json that named no network ran the quick presets' offline network
    (and the paper's otherwise); a train_result.json written before it recorded its device and
    autocast still reads; a study may switch on what changes speed only."""
    from percae.study.presets import preset_config
    from percae.training import TrainingRecord

    quick = StudyConfig.from_dict(
        {"dataset": "lunarlander", "preset": "quick", "perceptual_net": None}
    )
    paper = StudyConfig.from_dict({"dataset": "lunarlander", "perceptual_net": None})
    assert (quick.train.perceptual_net, paper.train.perceptual_net) == ("alexnet-random", "alexnet")
    with pytest.raises(ConfigError, match="give each setting once"):
        StudyConfig.from_dict({"dataset": "lunarlander", "ae_epochs": 7, "train": {"epochs": 2}})
    old = {"best_epoch": 2, "best_val_loss": 0.01, "seconds_per_epoch": 3.0, "images_per_s": 90.0}
    assert TrainingRecord.from_dict(old).validate() is None
    study = preset_config("lunarlander", "quick")
    faster = study.updated(train__compile=True, train__feature_cache_mb=100.0)
    assert faster.conflicts_with(study) == []
    assert study.updated(train__lr=0.01).conflicts_with(study) == ["train.lr: 0.001 -> 0.01"]


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_another_thread_receives_waits_until_the_written_file_is_whole(signum, tmp_path):
    """A Ctrl-C or SIGTERM that the kernel hands to another thread (one of torch's or BLAS's)
    is held, as one the main thread receives, until the file is complete and in place; then it
    takes effect, once."""
    import signal
    import threading

    signum = getattr(signal, signum)
    received = []

    def interrupt(number, frame):
        received.append(number)
        raise KeyboardInterrupt

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)  # started before the write, signals unblocked
    other.start()

    def write(f):
        signal.pthread_kill(other.ident, signum)
        for _ in range(1000):  # Python code runs on: a handler let through would run in here
            f.write(b"x")

    previous = signal.signal(signum, interrupt)  # the runner may have inherited it ignored
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic_write_bytes(tmp_path / "file", write)
        assert {s: signal.getsignal(s) for s in handlers} == handlers  # put back
    finally:
        signal.signal(signum, previous)
        stop.set()
        other.join()
    assert (tmp_path / "file").read_bytes() == b"x" * 1000
    assert not [p for p in tmp_path.iterdir() if p.name != "file"] and received == [signum]


def test_a_key_given_twice_in_a_json_file_is_refused(tmp_path):
    """JSON readers settle a repeated key each their own way (Python's keeps the last)."""
    path = tmp_path / "study.json"
    path.write_text('{"z_sizes": [8], "seed": 1, "z_sizes": [16]}')
    with pytest.raises(ConfigError, match="gives the key z_sizes twice"):
        StudyConfig.load(path)
    path.write_text('{"train": {"epochs": 2, "epochs": 3}}')
    with pytest.raises(ConfigError, match="gives the key epochs twice"):
        StudyConfig.load(path)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(z_sizes=(8, 8)), "--z names a latent size twice"),
        (dict(seeds=(0, 1, 0)), "--seeds needs distinct"),
        (dict(models=("AE", "P.AE", "AE")), "AE is named twice"),
    ],
)
def test_a_study_list_with_a_repeat_is_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        StudyConfig(**settings).validate()
