"""The study end to end on a tiny collection: outputs, baseline, Table I splits, and
that kill -9 in the middle of autoencoder training and of the predictor grid, then
rerunning, ends with the same summary as an uninterrupted run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from percae.data.lunarlander import LunarLanderConfig, generate_lunarlander, load_lunarlander
from percae.predictors import predictor_grid
from percae.study.presets import preset_config
from percae.reproduce import run_study

pytestmark = pytest.mark.slow  # whole studies or the command line end to end

TIMING_KEYS = {
    "seconds_per_epoch",
    "images_per_second",
    "perceptual_overhead",
    "perceptual_overhead_std",
}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "collection"
    generate_lunarlander(
        path, LunarLanderConfig(rollouts=12, steps=40, seed=3, workers=2), progress=False
    )
    return path


def tiny_args(root, out):
    return [
        "reproduce",
        "lunarlander",
        "--preset",
        "quick",
        "--out",
        str(out),
        "--root",
        str(root),
        "--z",
        "4",
        "--epochs",
        "3",
        "--predictor-epochs",
        "40",
        "--retrain-epochs",
        "2",
        "--perceptual-net",
        "alexnet-random",
        "--models",
        "AE,VAE,P.AE,P.VAE",
        "--seeds",
        "1",
        "--no-progress",
    ]


def comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


def test_study_outputs_and_baseline(collection, tmp_path):
    config = preset_config(
        "lunarlander",
        "quick",
        root=str(collection),
        z_sizes=(4,),
        train__epochs=2,
        predictor__epochs=20,
        retrain_epochs=1,
        train__perceptual_net="alexnet-random",
        models=("AE", "VAE", "P.AE", "P.VAE"),
        seeds=(0,),
    )
    summary = run_study(config, tmp_path, progress=False, log=lambda s: None)

    # The trivial baseline, recomputed here from the raw collection: the mean position of
    # the predictor-training frames, scored on the test frames.
    from percae.data import split
    from percae.data.lunarlander import lunarlander_study_data

    data = lunarlander_study_data(collection, seed=0)
    pred_train, _ = split(data.predictor, 0.2, 0)
    mean = pred_train.selected_targets().mean(0)
    expected = np.linalg.norm(data.test.selected_targets() - mean, axis=1).mean()
    assert summary["baseline"] == pytest.approx(expected, rel=1e-5)
    assert summary["metric"] == "pixel_distance" and summary["perceptual_net"] == "alexnet-random"

    # Table I splits: autoencoder on the unaltered half, predictor/test on the altered half, no
    # rollout shared.
    c = load_lunarlander(collection)
    half = c.meta["unaltered_rollouts"]
    ae_r = set(c.rollouts[data.autoencoder.indices])
    pr_r, te_r = set(c.rollouts[data.predictor.indices]), set(c.rollouts[data.test.indices])
    assert max(ae_r) < half and min(pr_r | te_r) >= half and not (pr_r & te_r)

    for model in ("AE", "VAE", "P.AE", "P.VAE"):
        assert set(summary["mlp"][model]) == {"4", "any"}
        assert summary["mlp"][model]["any"] == summary["mlp"][model]["4"]
        assert summary["mlp"][model]["4"] > 0
    assert max(summary["reconstruction_relative"].values()) == pytest.approx(1.0)
    results = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(results) == 4 * len(predictor_grid())
    selected = [r for r in results if r["selected"] == "True"]
    assert len(selected) == 8  # best MLP and best linear for each of the 4 autoencoders
    for row in selected:
        everything = [r for r in results if r["model"] == row["model"] and r["kind"] == row["kind"]]
        assert float(row["val_loss"]) == min(float(r["val_loss"]) for r in everything)
        assert float(row["test_metric"]) == pytest.approx(summary[row["kind"]][row["model"]]["4"])
    assert all(r["test_metric"] == "" for r in results if r["selected"] == "False")
    tables = (tmp_path / "tables.md").read_text()
    assert "Baseline" in tables and "13.22" in tables  # our rows beside the paper's Table II
    assert (tmp_path / "reconstructions.png").stat().st_size > 1000

    # `percae report` rebuilds the same summary from the saved files alone.
    before = json.loads((tmp_path / "summary.json").read_text())
    drawn = {p.name: p.read_bytes() for p in (tmp_path / "figures").iterdir()}
    assert set(drawn) == {
        f"{name}.{suffix}"
        for name in ("metric_vs_z", "ratios", "positions", "training_curves")
        for suffix in ("png", "pdf")
    }
    tables = (tmp_path / "tables.md").read_text()
    assert all(f"(figures/{name}.png)" in tables for name in ("metric_vs_z", "ratios", "positions"))
    assert "\\toprule" in (tmp_path / "tables.tex").read_text()
    # Each model's test predictions, for the positions figure: the selected MLP's error.
    (pred, truth) = np.load(tmp_path / "runs" / "P.AE_z4_seed0" / "test_predictions_mlp.npy")
    assert np.linalg.norm(pred - truth, axis=1).mean() == pytest.approx(
        summary["mlp"]["P.AE"]["4"], rel=1e-5
    )
    (tmp_path / "summary.json").unlink()
    (tmp_path / "tables.md").unlink()
    from percae.report import write_report

    assert write_report(tmp_path) == before
    assert {
        p.name: p.read_bytes() for p in (tmp_path / "figures").iterdir()
    } == drawn  # rebuilt to the byte

    # Rerunning with other settings into the same folder is refused rather than mixed.
    other = preset_config(
        "lunarlander",
        "quick",
        root=str(collection),
        z_sizes=(8,),
        train__perceptual_net="alexnet-random",
        models=("AE", "VAE", "P.AE", "P.VAE"),
        seeds=(0,),
    )
    with pytest.raises(Exception, match="other settings"):
        run_study(other, tmp_path, progress=False, log=lambda s: None)

    # A report killed while writing leaves temporary files; the next report removes them.
    from click.testing import CliRunner

    from percae.cli import main

    leftovers = [tmp_path / "figures" / ".positions.pdf.a1b2c3.tmp", tmp_path / ".tables.md.d4.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert not [path for path in leftovers if path.exists()]


def _percae(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "percae", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kw,
    )


def _kill_when(proc, ready, timeout=300):
    start = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(
                f"finished before the kill point: {proc.stderr.read().decode()[-2000:]}"
            )
        if time.monotonic() - start > timeout:
            proc.kill()
            raise AssertionError("kill point never reached")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_kill9_resume_gives_the_same_summary(collection, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    p = _percae(tiny_args(collection, whole))
    assert p.wait() == 0, p.stderr.read().decode()[-2000:]

    run = killed / "runs"
    # 1) in the middle of an autoencoder's training: a checkpoint exists, the result does not.
    p = _percae(tiny_args(collection, killed))
    _kill_when(p, lambda: (run / "VAE_z4_seed0" / "checkpoint.pt").exists())
    assert not (run / "VAE_z4_seed0" / "train_result.json").exists()
    # 2) in the middle of the predictor grid: embeddings written, the grid's record not.
    p = _percae(tiny_args(collection, killed))
    _kill_when(p, lambda: (run / "P.AE_z4_seed0" / "embeddings_test.npy").exists())
    assert not (run / "P.AE_z4_seed0" / "predictors.json").exists()
    p = _percae(tiny_args(collection, killed))
    assert p.wait() == 0, p.stderr.read().decode()[-2000:]

    a = json.loads((whole / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    a["config"].pop("root", None), b["config"].pop("root", None)
    assert comparable(a) == comparable(b)
    assert a["complete"] and b["complete"]


def test_image_size_that_a_dataset_cannot_take_is_refused(collection, tmp_path):
    # The collection was generated at 64 px; only folders are resized.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "percae",
            *tiny_args(collection, tmp_path / "out"),
            "--image-size",
            "80",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "lunarlander images" in result.stderr and "are 64 px, not 80" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (
        tmp_path / "out" / "study_config.json"
    ).exists()  # the corrected command can use the same --out
    assert not (tmp_path / "out" / "summary.json").exists()


def test_seeds_each_train_their_own_run_and_resume_per_seed(collection, tmp_path):
    """--seeds 2: one run folder per (model, z, seed); killed during seed 1's training, the
    rerun leaves seed 0's finished runs untouched, resumes seed 1 and ends with the same
    summary as an uninterrupted study."""
    # After tiny_args: these win. One unit at a time, so that seed 1's AE is finished when
    # seed 1's P.AE has begun.
    args = ["--models", "AE,P.AE", "--seeds", "2", "--workers", "1"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    p = _percae(tiny_args(collection, whole) + args)
    assert p.wait() == 0, p.stderr.read().decode()[-2000:]

    run = killed / "runs"
    p = _percae(tiny_args(collection, killed) + args)
    _kill_when(p, lambda: (run / "P.AE_z4_seed1" / "checkpoint.pt").exists())
    finished = {f: f.stat().st_mtime_ns for f in run.glob("*_seed0/**/*") if f.is_file()}
    assert (run / "AE_z4_seed1" / "retrain" / "retrain.json").exists() and len(finished) > 10
    p = _percae(tiny_args(collection, killed) + args)
    assert p.wait() == 0, p.stderr.read().decode()[-2000:]
    assert {f: f.stat().st_mtime_ns for f in finished} == finished

    a = json.loads((whole / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    a["config"].pop("root", None), b["config"].pop("root", None)
    assert comparable(a) == comparable(b)
    assert a["seeds"] == [0, 1] and a["config"]["seeds"] == [0, 1]
    for model in ("AE", "P.AE"):
        per_seed = a["per_seed"]["mlp"][model]["4"]
        assert len(per_seed) == 2 and per_seed[0] != per_seed[1]  # the seeds train different models
        assert a["mlp"][model]["4"] == pytest.approx(np.mean(per_seed))
    # Each seed's autoencoder starts from its own initial weights, on the same data.
    configs = [
        json.loads((whole / "runs" / f"AE_z4_seed{s}" / "train_config.json").read_text())
        for s in (0, 1)
    ]
    assert [c["seed"] for c in configs] == [0, 1]


def test_preset_seed_count_starts_at_the_chosen_seed_and_seeds_override_it():
    from percae.cli.options import parse_seeds

    assert preset_config("lunarlander", "quick").training_seeds() == (0, 1, 2)
    assert preset_config("lunarlander", "quick", seed=5).training_seeds() == (5, 6, 7)
    assert preset_config(
        "lunarlander", "quick", seed=5, seeds=parse_seeds("1", 5)
    ).training_seeds() == (5,)
    assert preset_config("lunarlander", "paper").training_seeds() == (0,)
    assert parse_seeds("2", first=3) == (3, 4) and parse_seeds("7,1,4") == (7, 1, 4)
    for bad in ("0", "a", "1,1"):
        with pytest.raises(Exception, match="--seeds"):
            preset_config("lunarlander", "quick", seeds=parse_seeds(bad))


def test_retrain_epochs_0_reads_reconstructions_as_trained(collection, tmp_path):
    config = preset_config(
        "lunarlander",
        "quick",
        root=str(collection),
        z_sizes=(4,),
        models=("AE",),
        seeds=(0,),
        train__epochs=1,
        predictor__epochs=5,
        retrain_epochs=0,
        train__perceptual_net="alexnet-random",
    )
    summary = run_study(config, tmp_path, progress=False, log=lambda s: None)
    retrain = tmp_path / "runs" / "AE_z4_seed0" / "retrain"
    record = json.loads((retrain / "retrain.json").read_text())
    assert record["epochs_run"] == 0 and record["l1_after"] == record["l1_before"] > 0
    before, after = np.load(retrain / "reconstructions.npy")
    assert np.array_equal(before, after)
    assert not (retrain / "model.safetensors").exists()  # no decoder was trained
    from percae.embeddings import reconstruction_l1
    from percae.model import load_autoencoder
    from percae.layout import StudyFiles
    from percae.study.data import prepare_data

    # The L1 is that of the autoencoder as trained, on the test part.
    data = prepare_data(config, StudyFiles(tmp_path), log=lambda s: None, progress=False)
    expected = reconstruction_l1(
        load_autoencoder(tmp_path / "runs" / "AE_z4_seed0"), data.test, device="cpu"
    )
    assert record["l1_before"] == pytest.approx(expected, rel=1e-5)
    assert summary["complete"]
    assert "as trained, without decoder retraining" in (tmp_path / "tables.md").read_text()


def test_a_capped_autoencoder_part_keeps_whole_rollouts_and_the_tables_say_so(collection, tmp_path):
    from percae.layout import StudyFiles
    from percae.study.data import prepare_data

    def prepared(**settings):
        config = preset_config("lunarlander", "quick", root=str(collection), **settings)
        return prepare_data(config, StudyFiles(tmp_path), log=lambda s: None, progress=False)

    whole = prepared()
    n = len(whole.autoencoder)
    capped = prepared(max_autoencoder_images=n // 2)
    rollouts = load_lunarlander(collection).rollouts
    kept, all_frames = rollouts[capped.autoencoder.indices], rollouts[whole.autoencoder.indices]
    assert n // 2 <= len(kept) < n
    for r in np.unique(kept):  # every chosen rollout with all its frames: splits stay leak-free
        assert (kept == r).sum() == (all_frames == r).sum()
    assert (
        f"the autoencoder part holds {len(kept)} of its {n} images (max_autoencoder_images = "
        f"{n // 2}; drawn at random, whole rollouts at a time)"
    ) in capped.notes
    assert not any("part holds" in note for note in whole.notes)
    assert len(prepared(max_autoencoder_images=n).autoencoder) == n


def test_a_finished_training_resumed_with_a_leftover_checkpoint_ends_without_it(
    collection, tmp_path
):
    """A Ray task whose worker is lost after its training finished leaves the driver's folder a
    finished training plus the last checkpoint it sent; resumed, the run ends as the local
    executor leaves it: no checkpoint, the same results."""
    config = preset_config(
        "lunarlander",
        "quick",
        root=str(collection),
        z_sizes=(4,),
        models=("AE",),
        seeds=(0,),
        train__epochs=2,
        predictor__epochs=5,
        retrain_epochs=1,
        train__perceptual_net="alexnet-random",
    )
    first = run_study(config, tmp_path, progress=False, log=lambda s: None)
    run = tmp_path / "runs" / "AE_z4_seed0"
    (run / "retrain" / "retrain.json").unlink()
    (run / "checkpoint.pt").write_bytes((run / "model.safetensors").read_bytes())  # any leftover
    again = run_study(config, tmp_path, progress=False, log=lambda s: None)
    assert not (run / "checkpoint.pt").exists()
    assert comparable(again) == comparable(first)


def test_kl_weight_reaches_every_vae_of_a_study_and_its_active_units_are_reported(
    collection, tmp_path
):
    from click.testing import CliRunner

    from percae.cli import main

    out = tmp_path / "study"
    args = tiny_args(collection, out) + [
        "--models",
        "AE,VAE,P.VAE",
        "--kl-weight",
        "0.25",
        "--epochs",
        "2",
        "--retrain-epochs",
        "0",
        "--predictor-epochs",
        "5",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "study_config.json").read_text())["train"]["kl_weight"] == 0.25
    summary = json.loads((out / "summary.json").read_text())
    for model in ("VAE", "P.VAE"):
        run = out / "runs" / f"{model}_z4_seed0"
        assert json.loads((run / "train_config.json").read_text())["kl_weight"] == 0.25
        trained = json.loads((run / "train_result.json").read_text())
        history = list(csv.DictReader((run / "history.csv").open()))
        best = {
            k: float(v)
            for k, v in next(r for r in history if int(r["epoch"]) == trained["best_epoch"]).items()
        }
        # The KL term enters each VAE's objective with weight 0.25 (validation: decoding mu).
        assert best["val_loss"] == pytest.approx(
            best["val_reconstruction"] + 0.25 * best["val_kl_term"], rel=1e-4
        )
        assert summary["active_units"][model]["4"] == [trained["active_units"]]
    assert "AE" not in summary["active_units"]
    assert "Active units of the VAEs" in (out / "tables.md").read_text()


def test_provenance_is_recorded_in_the_study_its_summary_and_each_run(collection, tmp_path):
    from percae.perceptual_networks import build_perceptual_network
    from percae.provenance import SCHEMA_VERSION, network_fingerprint

    config = preset_config(
        "lunarlander",
        "quick",
        root=str(collection),
        z_sizes=(4,),
        models=("P.AE",),
        seeds=(0,),
        train__epochs=1,
        predictor__epochs=5,
        retrain_epochs=0,
        train__perceptual_net="alexnet-random",
        train__device="cpu",
    )
    summary = run_study(config, tmp_path, progress=False, log=lambda s: None)
    record = json.loads((tmp_path / "provenance.json").read_text())
    assert record["schema"] == SCHEMA_VERSION and len(record["sessions"]) == 1
    session = record["sessions"][0]
    assert session["versions"]["torch"] == torch.__version__ and session["device"].startswith("cpu")
    assert session["perceptual_net"] == "alexnet-random"
    # The digest is that of the network's weights: rebuilt (seeded) it is the same network.
    assert session["perceptual_net_sha256"] == network_fingerprint(
        build_perceptual_network("alexnet-random")
    )
    assert summary["provenance"] == record
    run = json.loads((tmp_path / "runs" / "P.AE_z4_seed0" / "train_result.json").read_text())
    assert run["provenance"]["versions"] == session["versions"]
    # Resumed by the same software on the same device: still one session.
    run_study(config, tmp_path, progress=False, log=lambda s: None)
    assert len(json.loads((tmp_path / "provenance.json").read_text())["sessions"]) == 1


def test_the_paper_preset_offline_is_refused_in_one_line_before_any_file(
    collection, tmp_path, empty_torch_home, no_network
):
    from click.testing import CliRunner

    from percae.cli import main

    out = tmp_path / "results"
    result = CliRunner().invoke(
        main,
        [
            "reproduce",
            "lunarlander",
            "--preset",
            "paper",
            "--root",
            str(collection),
            "--models",
            "AE,P.AE",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "--perceptual-weights PATH" in line and "downloading" in line
    assert not out.exists()


def test_a_study_of_pixel_wise_models_needs_no_perceptual_network(
    collection, tmp_path, empty_torch_home, no_network
):
    from percae.study.config import StudyConfig
    from percae.study.data import resolve_perceptual_net

    config = StudyConfig(
        root=str(collection), models=("AE", "VAE"), z_sizes=(4,)
    )  # the paper's preset: AlexNet
    assert config.perceptual_net is None
    assert resolve_perceptual_net(config, log=lambda s: None) == (None, {})
    with pytest.raises(Exception, match="--perceptual-weights"):
        resolve_perceptual_net(
            StudyConfig(root=str(collection), models=("AE", "P.AE")), log=lambda s: None
        )


def test_the_quick_preset_uses_the_same_network_whether_alexnet_is_cached_or_not(
    collection, tmp_path, empty_torch_home, no_network
):
    import shutil

    import torchvision

    from percae.perceptual_networks import alexnet_cache_path
    from percae.study.data import resolve_perceptual_net

    config = preset_config("lunarlander", "quick", root=str(collection))
    assert config.perceptual_net == "alexnet-random"
    lines = []
    resolve_perceptual_net(config, log=lines.append)  # refuses nothing with no AlexNet at hand
    alexnet_cache_path().parent.mkdir(parents=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), alexnet_cache_path())
    resolve_perceptual_net(config, log=lines.append)
    assert preset_config("lunarlander", "quick", root=str(collection)) == config
    assert all("the quick preset uses alexnet-random" in line for line in lines) and len(lines) == 2
    shutil.rmtree(alexnet_cache_path().parent)


def _files_and_mtimes(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_a_study_grows_by_training_only_its_new_units_and_refuses_changes_to_finished_ones(
    collection, tmp_path
):
    small = dict(
        root=str(collection),
        z_sizes=(4,),
        train__epochs=2,
        predictor__epochs=15,
        retrain_epochs=0,
        train__perceptual_net="alexnet-random",
    )
    grown = tmp_path / "grown"
    run_study(
        preset_config("lunarlander", "quick", models=("AE",), seeds=(0,), **small),
        grown,
        progress=False,
        log=lambda s: None,
    )
    first = _files_and_mtimes(grown / "runs" / "AE_z4_seed0")
    lines = []
    summary = run_study(
        preset_config("lunarlander", "quick", models=("AE", "P.AE"), seeds=(0, 1), **small),
        grown,
        progress=False,
        log=lines.append,
    )
    assert _files_and_mtimes(grown / "runs" / "AE_z4_seed0") == first  # untouched
    assert (
        sum("training the autoencoder" in line for line in lines) == 3
    )  # P.AE seed 0, AE and P.AE seed 1
    at_once = run_study(
        preset_config("lunarlander", "quick", models=("AE", "P.AE"), seeds=(0, 1), **small),
        tmp_path / "at-once",
        progress=False,
        log=lambda s: None,
    )
    # (provenance lists the two sessions that worked on the grown study)
    assert {**comparable(summary), "provenance": None} == {
        **comparable(at_once),
        "provenance": None,
    }

    def untimed(text):
        return [
            line for line in text.splitlines() if "overhead" not in line and "images/s" not in line
        ]

    assert untimed((grown / "tables.md").read_text()) == untimed(
        (tmp_path / "at-once" / "tables.md").read_text()
    )

    # What the finished units were trained with cannot change, and a study does not shrink.
    for change, named in (
        (dict(train__epochs=3), "train.epochs: 2 -> 3"),
        (dict(seeds=(1,)), "seeds: 0 dropped"),
    ):
        settings = {**small, "models": ("AE", "P.AE"), "seeds": (0, 1), **change}
        with pytest.raises(Exception, match=named):
            run_study(
                preset_config("lunarlander", "quick", **settings),
                grown,
                progress=False,
                log=lambda s: None,
            )


def test_a_study_on_a_collection_changed_in_place_and_a_run_of_another_z_are_refused(
    collection, tmp_path
):
    import shutil

    root = tmp_path / "collection"
    shutil.copytree(collection, root)
    small = dict(
        root=str(root),
        z_sizes=(4,),
        train__epochs=1,
        predictor__epochs=5,
        retrain_epochs=0,
        models=("AE",),
        seeds=(0,),
    )
    run_study(
        preset_config("lunarlander", "quick", **small),
        tmp_path / "out",
        progress=False,
        log=lambda s: None,
    )
    # Another run's model (z = 8) in the z = 4 unit's folder, its later files deleted.
    other = tmp_path / "other"
    run_study(
        preset_config("lunarlander", "quick", **{**small, "z_sizes": (8,)}),
        other,
        progress=False,
        log=lambda s: None,
    )
    unit = tmp_path / "out" / "runs" / "AE_z4_seed0"
    shutil.rmtree(unit)
    shutil.copytree(other / "runs" / "AE_z8_seed0", unit)
    for later in ("predictors.json", "retrain"):
        shutil.rmtree(unit / later) if (unit / later).is_dir() else (unit / later).unlink()
    with pytest.raises(
        Exception, match="holds a ae with z = 8 at 64 px, not this unit's ae with z = 4"
    ):
        run_study(
            preset_config("lunarlander", "quick", **small),
            tmp_path / "out",
            progress=False,
            log=lambda s: None,
        )
    # The collection changed in place: refused before any unit runs.
    images = np.load(root / "images.npy", mmap_mode="r+")
    images[::2] = 255 - images[::2]
    images.flush()
    del images
    with pytest.raises(Exception, match="holds a study of other data"):
        run_study(
            preset_config("lunarlander", "quick", **small),
            tmp_path / "out",
            progress=False,
            log=lambda s: None,
        )
