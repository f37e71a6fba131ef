"""The study's units on Ray (`percae reproduce --executor ray`): each (model, z, seed) is a
Ray task with its share of CPUs and GPUs (0.25 GPU: four trainings share one), on a Ray
started for the study or on an existing cluster (`--address`).

Workers need no shared file system: the study's data travels once through Ray's object
store, a task works in a temporary folder of its own, starting from the files the results
folder already holds for its unit, and returns its run folder's files; the driver writes
them into the results folder atomically, the files that mark a step finished last, as the
local executor would. After each epoch a task also sends what changed in its folder (the
checkpoint, the history) to a mailbox actor, without waiting, and the driver writes it too: a driver
killed and restarted skips the finished units and resumes the others from their last checkpoint,
as the local executor does. A task whose worker dies is resubmitted by the driver (up to
`max_retries` times) from what its run folder holds then: its last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from typing import Callable

from .config import STOPPING_SIGNALS, ConfigError, atomic_write_bytes
from .data import ImageSet
from .layout import RunFiles, StudyFiles, run_name
from .study.config import StudyConfig
from .study.data import StudyParts
from .study.unit import EpochHook, Unit, run_one
from .training import TrainingDiverged


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.9')"
        ) from None
    return ray


class RayExecutor:
    """Runs a study's units as Ray tasks; `address` None starts a local Ray for the study
    (with `num_cpus` CPUs, default all) and stops it at the end."""

    def __init__(
        self,
        address: str | None = None,
        cpus_per_run: float = 1.0,
        gpus_per_run: float = 0.0,
        max_retries: int = 3,
        num_cpus: int | None = None,
    ):
        if (
            cpus_per_run <= 0
            or gpus_per_run < 0
            or (gpus_per_run > 1 and gpus_per_run != int(gpus_per_run))
        ):
            raise ConfigError(
                "--cpus-per-run must be positive and --gpus-per-run 0 or more (a fraction only "
                f"below 1), got {cpus_per_run} and {gpus_per_run}"
            )
        self.address, self.cpus_per_run, self.gpus_per_run = address, cpus_per_run, gpus_per_run
        self.max_retries, self.num_cpus = max_retries, num_cpus
        self.started = False
        _import_ray()  # a missing Ray is refused before the study writes anything

    def start(self, config: StudyConfig) -> None:
        """Join or start Ray and check that a unit fits it, before the study writes anything."""
        ray = _import_ray()
        device = config.train.device
        if self.gpus_per_run > 0 and device not in ("auto", "cuda", "cuda:0"):
            raise ConfigError(
                f"--device {device} with --gpus-per-run: each task sees its own GPU as cuda:0; use "
                "--device auto or cuda"
            )
        if self.gpus_per_run == 0 and device.startswith("cuda"):
            raise ConfigError(
                f"--device {device} needs --gpus-per-run above 0 (Ray gives GPUs only to tasks "
                "that ask for them)"
            )
        if not ray.is_initialized():
            handlers = _signal_handlers()
            if self.address is None:
                end_abandoned_rays()
            try:
                # address None: a Ray of our own (not one that RAY_ADDRESS or `ray start` left
                # around).
                ray.init(
                    address=self.address or "local",
                    num_cpus=self.num_cpus if self.address is None else None,
                    include_dashboard=False,
                    log_to_driver=False,
                )
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise ConfigError(
                    f"cannot start or reach Ray (--address {self.address}): "
                    f"{' '.join(str(e).split())[:200]}"
                ) from None
            self.started = True
            _restore_signal_handlers(handlers)
            if self.address is None:
                _record_this_ray()
        available = ray.cluster_resources()
        for name, need in (("CPU", self.cpus_per_run), ("GPU", self.gpus_per_run)):
            if need > available.get(name, 0):
                self.stop()
                raise ConfigError(
                    f"a unit asks for {need:g} {name} and this Ray has {available.get(name, 0):g}; "
                    f"lower --{name.lower()}s-per-run"
                )

    def stop(self) -> None:
        if self.started:
            _import_ray().shutdown()
            self.started = False
            # The workers of the Ray this study started are gone, and with them the holders of
            # their unit folders on this machine.
            remove_abandoned_unit_folders()
            _ray_record(os.getpid()).unlink(missing_ok=True)

    def run(
        self,
        config: StudyConfig,
        parts: StudyParts,
        files: StudyFiles,
        todo: list[Unit],
        progress: bool,
        log: Callable[[str], None],
        on_epoch: EpochHook | None = None,
    ) -> None:
        ray = _import_ray()
        todo = [u for u in todo if not files.run(u).retrain_result.exists()]
        if todo:
            if not ray.is_initialized():
                self.start(config)
            self._run(ray, config, parts, files, todo, log, on_epoch)

    def _run(self, ray, config, parts, files, todo, log, on_epoch) -> None:
        # A task that asks for no GPU must not see one (newer Rays leave CUDA_VISIBLE_DEVICES
        # alone).
        hide_gpus = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}} if self.gpus_per_run == 0 else None
        # Retries are the driver's, not Ray's: Ray would rerun a task from the files it was first
        # given, the driver resubmits it with what its folder holds now (its last checkpoint).
        task = ray.remote(_run_unit).options(
            num_cpus=self.cpus_per_run,
            num_gpus=self.gpus_per_run,
            max_retries=0,
            runtime_env=hide_gpus,
        )
        lost_worker = tuple(
            getattr(ray.exceptions, name)
            for name in (
                "WorkerCrashedError",
                "NodeDiedError",
                "LocalRayletDiedError",
                "ObjectLostError",
                "OutOfMemoryError",
            )
            if hasattr(ray.exceptions, name)
        )
        parts_ref, config_dict = ray.put(_in_memory(parts)), config.to_dict()
        updates = ray.remote(num_cpus=0)(_Mailbox).remote()

        def submit(unit: Unit):
            # What the results folder holds for this unit (a checkpoint, a finished training) is
            # where it resumes.
            run = files.run(unit)
            return task.remote(config_dict, unit, parts_ref, _read_folder(run.root), updates)

        pending = {submit(unit): unit for unit in todo}
        done, failures, ended, retries = 0, [], set(), dict.fromkeys(todo, 0)
        log(
            f"ray: {len(todo)} unit(s) submitted ({self.cpus_per_run:g} CPU, {self.gpus_per_run:g} "
            "GPU each)"
        )
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            # A unit's updates may arrive after its result: those of an ended unit are dropped (its
            # result holds the whole folder); a resubmitted unit's come from its new task.
            for unit, changed, phase, row in ray.get(updates.take.remote()):
                if unit not in ended:
                    _write_folder(files.run(unit), changed)
                    if on_epoch is not None:
                        on_epoch(unit, phase, row)
            for ref in ready:
                unit = pending.pop(ref)
                ended.add(unit)
                run = files.run(unit)
                try:
                    produced = ray.get(ref)
                except lost_worker as e:
                    if (
                        self.max_retries < 0 or retries[unit] < self.max_retries
                    ):  # -1: for ever, as Ray's
                        retries[unit] += 1
                        ended.discard(unit)
                        pending[submit(unit)] = unit
                        log(
                            f"ray: {run.root.name}: its worker was lost ({type(e).__name__}); "
                            f"resubmitted from its folder's last checkpoint (retry {retries[unit]})"
                        )
                        continue
                    failures.append(e)
                    log(f"ray: {run.root.name} failed: {' '.join(str(e).split())[:300]}")
                except ray.exceptions.RayError as e:  # its own error
                    failures.append(getattr(e, "cause", None) or e)
                    log(f"ray: {run.root.name} failed: {' '.join(str(failures[-1]).split())[:300]}")
                    if isinstance(
                        failures[-1], TrainingDiverged
                    ):  # as the local executor: nothing kept
                        run.checkpoint.unlink(missing_ok=True)
                        run.history.unlink(missing_ok=True)
                else:
                    _write_folder(run, produced, complete=True)
                    done += 1
                log(
                    f"ray: units {done} done, {len(pending)} running or queued, {len(failures)} "
                    "failed"
                )
        if failures:
            raise failures[0]


def _signal_handlers() -> dict:
    return {signum: signal.getsignal(signum) for signum in STOPPING_SIGNALS}


def _restore_signal_handlers(handlers: dict) -> None:
    """Ray takes SIGTERM and SIGINT for itself when it starts in the driver (a C++ stack dump
    and an abort, or an exit with nothing unwound, Ray left running); with the handlers it
    found given back, a Ray study ends as a local one does: one line, exit 143 or 130, Ray
    stopped, the unit folders removed."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)


def _ray_record(driver: int) -> Path:
    return Path(tempfile.gettempdir()) / f"percae-ray-{driver}.json"


def _start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot; Linux): with its PID, it names the
    process even after the PID is reused. None: no such process, or no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _record_this_ray() -> None:
    """Write down the processes of the Ray this driver has just started (all its descendants
    now), so that if the driver is killed (kill -9) before it stops them, the next Ray study
    on this machine ends them; Ray's agents outlive a killed driver for minutes."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(
                    int(entry)
                )
        except (OSError, ValueError, IndexError):
            continue
    started, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            started.append([child, _start_time(child)])
            todo.append(child)
    driver = [os.getpid(), _start_time(os.getpid())]
    atomic_write_bytes(
        _ray_record(os.getpid()),
        lambda f: f.write(json.dumps({"driver": driver, "processes": started}).encode()),
    )


def end_abandoned_rays() -> None:
    """End the processes of the Rays that killed percae drivers on this machine started."""
    for record in Path(tempfile.gettempdir()).glob("percae-ray-*.json"):
        try:
            content = json.loads(record.read_text())
            driver, processes = content["driver"], content["processes"]
            if _start_time(driver[0]) == driver[1] and driver[1] is not None:
                continue  # its driver is alive: its Ray is in use
            for pid, start in processes:
                if start is not None and _start_time(pid) == start:
                    os.kill(pid, signal.SIGKILL)
            record.unlink(missing_ok=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # another user's record, or not one percae wrote


UNIT_FOLDER_PREFIX = "percae-unit-"
_HELD = "held"  # in a unit folder: written once its task holds the folder's lock


@contextlib.contextmanager
def _unit_folder():
    """A temporary folder for one unit, locked for as long as its task works in it, so that
    the folders of tasks that were killed (a driver stopping Ray, kill -9, a lost node) are
    told apart from those at work and removed by the next task or driver on that machine."""
    remove_abandoned_unit_folders()
    folder = Path(tempfile.mkdtemp(prefix=UNIT_FOLDER_PREFIX))
    fd = os.open(folder, os.O_RDONLY)
    try:
        _lock(fd, wait=True)
        (folder / _HELD).write_text(f"{os.getpid()}\n")
        yield folder
    finally:
        # The mark last: a task killed while removing its folder leaves it marked abandoned.
        for entry in folder.iterdir() if folder.is_dir() else []:
            if entry.name != _HELD:
                shutil.rmtree(entry, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def _lock(fd: int, wait: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no locks, and nothing is ever taken for abandoned
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def remove_abandoned_unit_folders() -> None:
    """Remove the unit folders in this machine's temporary directory that no task holds."""
    for folder in Path(tempfile.gettempdir()).glob(f"{UNIT_FOLDER_PREFIX}*"):
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:  # gone meanwhile, or another user's
            continue
        try:
            # Not yet marked: a task about to lock it, unless a minute has passed.
            held = (folder / _HELD).exists() or time.time() - folder.stat().st_mtime > 60
            if _lock(fd, wait=False) and held:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass
        finally:
            os.close(fd)


def _in_memory(parts: StudyParts) -> StudyParts:
    """`parts` with its memory-mapped images as plain arrays: Ray stores a plain array once and
    lets every task on a node read it in place, where a memmap would be copied into each."""
    views: dict[int, np.ndarray] = {}

    def plain(images: ImageSet) -> ImageSet:
        array = views.setdefault(id(images.images), np.asarray(images.images))
        return replace(images, images=array, _cache={})

    data = parts.data
    data = replace(
        data,
        autoencoder=plain(data.autoencoder),
        predictor=plain(data.predictor),
        test=plain(data.test),
    )
    return replace(parts, data=data, ae_train=plain(parts.ae_train), ae_val=plain(parts.ae_val))


class _Mailbox:
    """The per-epoch updates of all tasks, in the order each task sent them, until the driver takes
    them."""

    def __init__(self):
        self.items: list = []

    def put(self, item) -> None:
        self.items.append(item)

    def take(self) -> list:
        items, self.items = self.items, []
        return items


def _run_unit(
    config_dict: dict, unit: Unit, parts: StudyParts, existing: dict[str, bytes], updates
) -> dict[str, bytes]:
    """One unit in a temporary folder of the worker; after each epoch, what changed in it goes
    to the driver through `updates`; returns its run folder's files (and its log)."""
    import ray

    from . import feature_cache

    config = StudyConfig.from_dict(config_dict)
    # A fraction of a GPU: the feature cache takes its quarter of that fraction, not of the GPU.
    share = ray.get_runtime_context().get_assigned_resources().get("GPU", 0)
    feature_cache.GPU_SHARE = share if 0 < share < 1 else 1.0
    lines: list[str] = []
    with _unit_folder() as tmp:
        run = RunFiles(tmp / run_name(unit.model, unit.z, unit.seed))  # its log names it
        _write_folder(run, existing)
        sent = {name: hash(data) for name, data in existing.items()}

        def send_changes(phase: str, row: dict) -> None:
            changed = {
                name: data
                for name, data in _read_folder(run.root).items()
                if sent.get(name) != hash(data)
            }
            sent.update({name: hash(data) for name, data in changed.items()})
            # Sent without waiting: a task blocked in Ray hands back its CPUs, and Ray would start
            # another unit on them (two trainings on CPUs meant for one).
            updates.put.remote((unit, changed, phase, row))

        run_one(
            config,
            unit.model,
            unit.z,
            unit.seed,
            parts,
            run,
            progress=False,
            log=lines.append,
            on_epoch=send_changes,
        )
        produced = _read_folder(run.root)
    produced[run.log.name] = ("\n".join(lines) + "\n").encode()
    return produced


def _read_folder(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if path.is_file() and not path.name.startswith("."):
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def _write_folder(run: RunFiles, produced: dict[str, bytes], complete: bool = False) -> None:
    """Write a unit's files into `run`, each atomically; the files that mark a step finished
    (training, grid, whole unit) last, so that a driver killed while writing leaves the unit
    unfinished and it resumes from what was written. `complete`: `produced` is the whole
    finished folder, and what else the folder holds (the checkpoints sent while it ran) goes."""
    markers = [
        p.relative_to(run.root).as_posix()
        for p in (run.train_result, run.predictors, run.retrain_result)
    ]
    for name in sorted(produced, key=lambda n: markers.index(n) + 1 if n in markers else 0):
        atomic_write_bytes(run.root / name, lambda f, data=produced[name]: f.write(data))
    if complete:
        for name in set(_read_folder(run.root)) - set(produced):
            (run.root / name).unlink()
