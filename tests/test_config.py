"""Typed configuration: JSON round-trips refuse what the dataclass does not declare, and
no file percae writes holds NaN or infinity (not standard JSON)."""

from __future__ import annotations

import json
import math

import pytest

from percae.config import ConfigError, atomic_write_json
from percae.study.config import StudyConfig
from percae.training import TrainConfig


def test_a_config_round_trips_through_json(tmp_path):
    config = StudyConfig(z_sizes=(32, 64), seeds=(0, 2), kl_weight=0.001, image_size=80)
    config.save(tmp_path / "c.json")
    assert StudyConfig.load(tmp_path / "c.json") == config


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

    from percae.config import _UMASK

    atomic_write_json(tmp_path / "a.json", {"x": 1})
    # mkstemp makes its files private; a result a group shares must stay readable to it.
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~_UMASK


def test_an_existing_output_folder_needs_no_writable_parent(tmp_path, monkeypatch):
    import os

    from percae.config import check_output_folder

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


def test_a_default_the_study_shares_with_a_part_is_written_once():
    """Where a study setting fills a training, predictor or collection setting with the same
    default, the study reads it from the part's class rather than writing the number again;
    and a preset sets only what differs from the defaults."""
    import ast
    import dataclasses
    import inspect

    from percae.data.lunarlander import LunarLanderConfig
    from percae.predictors import PredictorConfig
    from percae.study import config as study_module
    from percae.training import TrainConfig

    # Which study setting fills which part setting: found by giving each a distinct value.
    numeric = {
        f.name: 1000 + i
        for i, f in enumerate(dataclasses.fields(StudyConfig))
        if f.type in ("int", "float", "int | None")
    }
    study = StudyConfig(**numeric)
    parts = {
        TrainConfig: study.train_config("P.VAE", 0),
        PredictorConfig: study.predictor_config(0),
        LunarLanderConfig: study.lunarlander_config(),
    }
    fills = {
        name: (cls, f.name)
        for cls, part in parts.items()
        for f in dataclasses.fields(cls)
        for name, value in numeric.items()
        if getattr(part, f.name) == value
    }
    assert fills["ae_epochs"] == (TrainConfig, "epochs")  # the search finds the routes
    assert fills["predictor_batch_size"] == (PredictorConfig, "batch_size")

    tree = ast.parse(inspect.getsource(StudyConfig))
    literal = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            default = node.value
            if isinstance(default, ast.Call) and default.args:  # setting(DEFAULT, ...)
                default = default.args[0]
            literal[node.target.id] = isinstance(default, ast.Constant)
    defaults = {f.name: f.default for f in dataclasses.fields(StudyConfig)}
    twice = [
        f"StudyConfig.{name} and {cls.__name__}.{field}"
        for name, (cls, field) in fills.items()
        if literal[name] and defaults[name] == getattr(cls, field)
    ]
    assert twice == []
    restated = [
        f"{dataset} {preset}: {key}"
        for dataset, presets in study_module.PRESETS.items()
        for preset, values in presets.items()
        for key, value in values.items()
        if key in defaults and defaults[key] == value
    ]
    assert restated == []
