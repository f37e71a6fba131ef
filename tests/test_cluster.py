"""The study on Ray: the Ray executor writes what the local one writes, a unit whose worker
is killed is retried, and a driver killed and restarted does not redo finished units.

Needs the `ray` extra (`pip install -e '.[test,ray]'`, as CI installs); without it these
tests are reported as skipped, with that reason."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import processes_in_sessions, start_as_from_a_terminal

pytest.importorskip(
    "ray", reason="the Ray executor's tests need the ray extra: pip install -e '.[test,ray]'"
)

from percae.cluster import RayExecutor  # noqa: E402
from percae.layout import StudyFiles  # noqa: E402
from percae.study.presets import preset_config  # noqa: E402
from percae.reproduce import run_study  # noqa: E402

pytestmark = pytest.mark.slow  # whole studies or the command line end to end

TIMING = {
    "seconds_per_epoch",
    "images_per_second",
    "perceptual_overhead",
    "perceptual_overhead_std",
}


def tiny_config(collection_path, **overrides):
    settings = dict(
        root=str(collection_path),
        models=("AE", "VAE", "P.AE"),
        seeds=(0, 1),
        train__epochs=1,
        predictor__epochs=5,
        retrain_epochs=1,
        train__device="cpu",
        train__perceptual_net="alexnet-random",
    )
    return preset_config("lunarlander", "quick", **{**settings, **overrides})


def results(folder: Path) -> dict:
    """summary.json without its timing, and every array and weight the runs saved."""
    summary = json.loads(StudyFiles(folder).summary.read_text())
    out = {"summary": {k: v for k, v in summary.items() if k not in TIMING}}
    for path in sorted(folder.glob("runs/**/*")):
        if path.suffix == ".npy":
            out[str(path.relative_to(folder))] = np.load(path).tobytes()
        elif path.suffix == ".pt" and path.name != "checkpoint.pt":
            state = torch.load(path, weights_only=True)
            out[str(path.relative_to(folder))] = {k: v.numpy().tobytes() for k, v in state.items()}
    return out


@pytest.fixture(scope="module")
def local_results(collection_path, tmp_path_factory):
    # One thread, as each Ray task has (Ray gives a task as many threads as CPUs it asked for).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("local")
        run_study(tiny_config(collection_path), out, progress=False, log=lambda s: None)
    finally:
        torch.set_num_threads(threads)
    return out


def test_the_ray_executor_writes_what_the_local_one_writes(
    collection_path, local_results, tmp_path
):
    lines = []
    run_study(
        tiny_config(collection_path),
        tmp_path,
        progress=False,
        log=lines.append,
        executor=RayExecutor(num_cpus=2),
    )
    assert results(tmp_path) == results(local_results)
    assert any("ray: units 6 done, 0 running or queued, 0 failed" in line for line in lines)
    # Each unit's log is kept in its run folder.
    log = (tmp_path / "runs" / "VAE_z32_seed1" / "log.txt").read_text()
    assert "training the autoencoder" in log and "embedding and fitting the predictor grid" in log


def _workers_running_a_unit() -> list[int]:
    # Ray names a worker process after the task it runs.
    ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in ps.splitlines() if "ray::run_unit" in line]


def test_a_unit_runs_on_the_cpus_it_asked_for_alone(collection_path, tmp_path):
    """Two CPUs per unit on a Ray of two: one unit at a time. (A task that waited on Ray to send
    its checkpoint handed its CPUs back, and a second training started on them.)"""
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(len(_workers_running_a_unit()))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_study(
            tiny_config(collection_path, models=("AE", "P.AE"), seeds=(0,), train__epochs=3),
            tmp_path,
            progress=False,
            log=lambda s: None,
            executor=RayExecutor(num_cpus=2, cpus_per_run=2),
        )
    finally:
        stop.set()
        watcher.join()
    assert max(seen) == 1, f"units running at once: {sorted(set(seen))}"


def test_a_unit_whose_worker_is_killed_resumes_from_its_last_checkpoint_and_the_study_ends_alike(
    collection_path, local_results, tmp_path
):
    killed, checkpointed = [], []
    # Each task works in a temporary folder (percae-unit-*/RUN_NAME) it removes when it returns.
    work = Path(tempfile.gettempdir())
    earlier = set(work.glob("percae-unit-*"))

    def units_in_workers() -> set[str]:
        return {
            run.name
            for folder in set(work.glob("percae-unit-*")) - earlier
            for run in folder.glob("*")
        }

    study_ended = threading.Event()

    def kill_the_workers_once_a_checkpoint_reached_the_driver():
        # Watching until the study ends, however slow the machine is (no deadline of its own).
        while not study_ended.is_set() and not killed:
            # A unit still at work in a worker whose checkpoint the driver already holds.
            running = [
                p.parent
                for p in tmp_path.glob("runs/*/checkpoint.pt")
                if p.parent.name in units_in_workers()
            ]
            pids = _workers_running_a_unit()
            if running and pids:
                for pid in pids:  # every unit running: the checkpointed one among them
                    os.kill(pid, signal.SIGKILL)
                killed.extend(pids)
                checkpointed.extend(running)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_workers_once_a_checkpoint_reached_the_driver)
    killer.start()
    lines = []
    try:
        run_study(
            tiny_config(collection_path),
            tmp_path,
            progress=False,
            log=lines.append,
            executor=RayExecutor(num_cpus=2),
        )
    finally:
        study_ended.set()
        killer.join()
    assert killed, "test setup: no worker was running a unit"
    assert any("worker was lost" in line and "resubmitted" in line for line in lines)
    for run in checkpointed:  # resubmitted with the checkpoint the driver held, not from scratch
        assert "resuming from epoch" in (run / "log.txt").read_text(), run.name
    assert results(tmp_path) == results(local_results)
    assert any("0 failed" in line for line in lines[-1:])


def test_a_driver_killed_and_restarted_skips_finished_units_and_resumes_the_others(
    collection_path, tmp_path
):
    out = tmp_path / "study"
    command = [
        sys.executable,
        "-m",
        "percae",
        "reproduce",
        "lunarlander",
        "--preset",
        "quick",
        "--root",
        str(collection_path),
        "--models",
        "AE,P.AE",
        "--seeds",
        "0,1",
        "--epochs",
        "3",
        "--predictor-epochs",
        "5",
        "--retrain-epochs",
        "0",
        "--device",
        "cpu",
        "--perceptual-net",
        "alexnet-random",
        "--out",
        str(out),
        "--no-progress",
        "--executor",
        "ray",
        "--cpus-per-run",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    earlier = unit_folders()
    driver = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def state():
        finished = {p.parent.parent for p in out.glob("runs/*/retrain/retrain.json")}
        checkpointed = {p.parent for p in out.glob("runs/*/checkpoint.pt")} - finished
        return finished, checkpointed

    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None and not all(state()):
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)  # as `kill -9 PID`: the Ray it started is left running
    driver.wait()
    finished, checkpointed = state()
    assert finished and checkpointed, (
        "test setup: the driver was not killed between a finished unit and a checkpoint"
    )
    kept = {p: p.stat().st_mtime_ns for run in finished for p in run.rglob("*") if p.is_file()}

    restarted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert {
        p: p.stat().st_mtime_ns for p in kept
    } == kept  # the finished units were not written again
    for (
        run
    ) in checkpointed:  # the interrupted ones went on from the checkpoint the driver had received
        assert re.search(r"resuming from epoch \d", (run / "log.txt").read_text()), run.name
        assert not (run / "checkpoint.pt").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and len(summary["per_seed"]["mlp"]["P.AE"]["32"]) == 2
    # What the killed driver left (its workers' unit folders, its Ray) the rerun has removed.
    assert unit_folders() - earlier == set()
    assert not processes_in_sessions({driver.pid})


def unit_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("percae-unit-*"))


@pytest.mark.parametrize(
    "signum, status, word",
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")],
)
def test_a_ray_driver_stopped_by_a_signal_ends_in_one_line_and_leaves_nothing(
    signum, status, word, collection_path, tmp_path
):
    out = tmp_path / "study"
    command = [
        sys.executable, "-m", "percae", "reproduce", "lunarlander", "--preset", "quick",
        "--root", str(collection_path), "--models", "AE", "--seeds", "1", "--z", "4",
        "--epochs", "20", "--predictor-epochs", "5", "--device", "cpu", "--no-progress",
        "--out", str(out), "--executor", "ray", "--cpus-per-run", "1",
    ]  # fmt: skip
    earlier = unit_folders()
    driver = start_as_from_a_terminal(command)
    deadline = time.time() + 300
    while not list(out.glob("runs/*/checkpoint.pt")):
        assert driver.poll() is None and time.time() < deadline, "test setup: no checkpoint"
        time.sleep(0.05)
    driver.send_signal(signum)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == status, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        f"Error: {word}; rerun the same command to resume (finished work is kept)"
    )
    # Ray's own handler printed a C++ stack dump and aborted (exit 134), leaving Ray running.
    assert "Traceback" not in err and "received at time" not in err
    assert unit_folders() - earlier == set()
    deadline = time.time() + 30  # Ray's processes end as Ray stops them, a few seconds at most
    while processes_in_sessions({driver.pid}) and time.time() < deadline:
        time.sleep(0.5)
    assert not processes_in_sessions({driver.pid})


def test_unit_folders_in_use_or_just_made_are_kept_and_abandoned_ones_removed(
    tmp_path, monkeypatch
):
    from percae import cluster
    from percae.cluster.unit_folders import unit_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    abandoned = tmp_path / "percae-unit-killed"  # its task marked it, then was killed
    (abandoned / "AE_z4_seed0").mkdir(parents=True)
    (abandoned / "held").write_text("12345\n")
    just_made = tmp_path / "percae-unit-new"  # its task is about to lock and mark it
    just_made.mkdir()
    never_marked = tmp_path / "percae-unit-old"  # made, never marked, two minutes ago
    never_marked.mkdir()
    os.utime(never_marked, (time.time() - 120,) * 2)
    someone_elses = tmp_path / "other-tool-folder"
    (someone_elses / "held").mkdir(parents=True)
    with unit_folder() as in_use:
        (in_use / "AE_z4_seed1").mkdir()
        cluster.remove_abandoned_unit_folders()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [in_use.name, "percae-unit-new", "other-tool-folder"]
        )
    assert not in_use.exists()  # its task removes it as it ends


def test_a_unit_larger_than_the_ray_is_refused_before_any_file(collection_path, tmp_path):
    from percae.config import ConfigError

    with pytest.raises(ConfigError, match="a unit asks for 3 CPU and this Ray has 2"):
        run_study(
            tiny_config(collection_path),
            tmp_path / "study",
            progress=False,
            log=lambda s: None,
            executor=RayExecutor(num_cpus=2, cpus_per_run=3),
        )
    assert not (tmp_path / "study").exists()
