"""`percae probe` as strict as a study: every setting and array refused in one line, naming
its first cause, before any file; an interrupted probe resumes; a finished one is redone only
when asked, and the redo keeps nothing of the old."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from percae.cli import main
from percae.config import ConfigError
from percae.predictors import PredictorConfig
from percae.probe import probe_embeddings

FAST = PredictorConfig(epochs=3, device="cpu")


def _data(n=60, z=4, groups=12, seed=0):
    g = np.random.default_rng(seed)
    y = g.normal(size=(n, 2)).astype(np.float32)
    x = np.concatenate([y, g.normal(size=(n, z - 2))], 1).astype(np.float32)
    return x, y, np.repeat(np.arange(groups), n // groups)


def _probe(tmp_path, **changes):
    x, y, groups = _data()
    args = dict(
        embeddings={"z": x},
        targets=y,
        out=tmp_path / "out",
        groups=groups,
        seeds=(0, 1),
        config=FAST,
        progress=False,
        log=lambda s: None,
    )
    return probe_embeddings(**{**args, **changes})


x0, y0, g0 = _data()


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(seeds=(0, 0)), "names a seed twice"),
        (dict(seeds=(0, 1, 0)), "names a seed twice"),
        (dict(seeds=(-1,)), "non-negative integer seeds"),
        (dict(split_seed=-1), "--split-seed must be between 0"),
        (dict(task="ranking"), "unknown task 'ranking'"),
        (dict(embeddings={}), "at least one --embeddings"),
        (dict(test_targets=y0), "--test-targets needs --test-embeddings"),
        (dict(test_embeddings={"z": x0}), "--test-embeddings needs --test-targets"),
        (dict(test_embeddings={"w": x0}, test_targets=y0), "one for each --embeddings"),
        (dict(embeddings={"z": x0[:59]}), "has 59 rows where 60 are paired"),
        (dict(embeddings={"z": x0[:, :0]}), "is empty"),
        (dict(embeddings={"z": x0[:0]}, targets=y0[:0], groups=None), "is empty"),
        (dict(targets=y0[:, :0]), "is empty"),
        (dict(embeddings={"z": x0 + 1j}), "holds complex numbers"),
        (dict(targets=y0 + 1j), "holds complex numbers"),
        (dict(targets=np.arange(60, dtype=np.int64) * 10**15), "beyond the 16777216 float32"),
        (dict(targets=y0 * 1e30), "where float32 squares overflow"),
        (dict(embeddings={"z": np.where(x0 > 1, np.inf, x0)}), "NaN or infinite"),
        (dict(embeddings={"z": x0.astype(bool)}), "holds true/false values"),
        (dict(embeddings={"z": x0.astype(str)}), "holds text"),
        (dict(groups=np.repeat([0.0, np.nan], 30)), "NaN or infinite group ids"),
        (dict(groups=np.repeat([0, 1], 30)), "in 2 group(s); a probe splits by group into"),
        (dict(groups=np.arange(59)), "one group per row (60,)"),
        (
            dict(test_embeddings={"z": x0[:, :3]}, test_targets=y0),
            "has 3 dimensions, its --embeddings 4",
        ),
        (
            dict(test_embeddings={"z": x0}, test_targets=y0[:, :1]),
            "--test-targets has 1 value(s) per row, --targets 2",
        ),
        (dict(task="classification"), "integer class labels (N,)"),
    ],
)
def test_a_bad_setting_or_array_is_one_line_naming_its_first_cause_and_no_file(
    changes, message, tmp_path
):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        _probe(tmp_path, **changes)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_a_grid_too_large_for_the_memory_free_is_refused(tmp_path, monkeypatch):
    from percae.probe import checks as probe

    monkeypatch.setattr(probe, "grid_memory_bytes", lambda rows, dims, outputs: 1 << 60)
    with pytest.raises(ConfigError, match="needs about .* GB, more than the"):
        _probe(tmp_path)
    assert not (tmp_path / "out").exists()


def test_the_memory_estimate_grows_with_the_embeddings_dimension():
    from percae.predictors import grid_memory_bytes

    small, large = grid_memory_bytes(300, 1000, 2), grid_memory_bytes(300, 100_000, 2)
    # Measured on this CPU: the 38-member grid took 185 KB per dimension (docs/performance.md).
    assert 150_000 < (large - small) / 99_000 < 250_000


def test_an_interrupted_probe_resumes_and_a_finished_one_is_redone_only_when_asked(tmp_path):
    first = _probe(tmp_path)
    out = tmp_path / "out"
    # As if killed after the first grid: the result and the second seed's grid gone.
    (out / "probe.json").unlink()
    kept = out / "runs" / "z_seed0" / "predictors.json"
    before = kept.stat().st_mtime_ns
    import shutil

    shutil.rmtree(out / "runs" / "z_seed1")
    again = _probe(tmp_path)
    assert kept.stat().st_mtime_ns == before  # not fitted again
    assert again == first
    with pytest.raises(ConfigError, match="holds a finished probe; add --replace"):
        _probe(tmp_path)
    # Other settings in an interrupted probe's folder: refused, naming them.
    (out / "probe.json").unlink()
    with pytest.raises(ConfigError, match="interrupted probe of other seeds"):
        _probe(tmp_path, seeds=(0, 1, 2))
    # A redo with other embeddings keeps nothing of the old probe's runs.
    x, _, _ = _data(seed=5)
    redone = _probe(tmp_path, embeddings={"w": x}, replace_finished=True)
    assert sorted(os.listdir(out / "runs")) == ["w_seed0", "w_seed1"]
    assert list(redone["embeddings"]) == ["w"]


def test_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="a folder of other files, not a probe's"):
        _probe(tmp_path)
    with pytest.raises(ConfigError, match="a folder of other files, not a probe's"):
        _probe(tmp_path, replace_finished=True)
    assert os.listdir(tmp_path / "out") == ["notes.txt"]


def test_two_accuracy_seeds_stay_within_0_and_100_percent_and_say_two_is_few(tmp_path):
    x, _, groups = _data()
    labels = (x[:, 0] > 0).astype(np.int64)
    result = _probe(tmp_path, targets=labels, task="classification")
    from percae.probe import probe_tables

    tables = probe_tables(result)
    assert "Note: 2 seeds" in tables
    for line in tables.splitlines():
        if line.startswith("| z |"):
            for cell in line.split("|")[2:4]:
                if "CI" in cell:  # cut at the metric's range
                    low, high = cell.split("CI")[1].strip(" )").split("–")
                    assert float(low.rstrip("%")) >= 0 and float(high.rstrip("%")) <= 100
                else:
                    mean, half = (float(v.strip(" %")) for v in cell.split("±"))
                    assert 0 <= mean - half and mean + half <= 100


def test_probe_reads_an_encode_folder_with_its_targets_and_groups_and_warns_of_training_images(
    tmp_path,
):
    x, y, groups = _data()
    folder = tmp_path / "encoded"
    folder.mkdir()
    np.save(folder / "embeddings.npy", x)
    np.save(folder / "targets.npy", y)
    np.save(folder / "groups.npy", groups)
    (folder / "encoding.json").write_text(
        json.dumps(
            {
                "run": "r",
                "data": "d",
                "dataset": "lunarlander",
                "part": "all",
                "task": "position",
                "images": 60,
            }
        )
    )
    result = CliRunner().invoke(
        main,
        [
            "probe",
            "--embeddings",
            str(folder),
            "--seeds",
            "0,1",
            "--predictor-epochs",
            "3",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "images the autoencoder trained on" in result.output
    probe = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert probe["task"] == "position" and probe["sizes"]["groups"] == 12
    assert list(probe["embeddings"]) == ["encoded"]
