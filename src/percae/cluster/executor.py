"""`RayExecutor`: a study's units as Ray tasks, on a Ray started for the study or on an existing
cluster; the driver writes what the tasks send back."""

from __future__ import annotations

import os
import signal
import threading

from ..config import ConfigError
from ..study.config import StudyConfig
from ..files import STOPPING_SIGNALS
from ..study.unit import Unit, UnitWork
from ..training import TrainingDiverged
from .processes import end_abandoned_rays, ray_record, record_this_ray
from .unit_folders import remove_abandoned_unit_folders
from .worker import Mailbox, in_memory, read_folder, run_unit, write_folder


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
                record_this_ray()
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
            ray_record(os.getpid()).unlink(missing_ok=True)

    def run(self, units: list[Unit], work: UnitWork) -> None:
        """Each unit a Ray task with `work`'s settings and data; its files come back into
        `work.files`, its epochs to `work.on_epoch`, its lines to `work.log`."""
        ray = _import_ray()
        if units:
            if not ray.is_initialized():
                self.start(work.config)
            self._run(ray, work, units)

    def _run(self, ray, work: UnitWork, todo: list[Unit]) -> None:
        config, files, log, on_epoch = work.config, work.files, work.log, work.on_epoch
        # A task that asks for no GPU must not see one (newer Rays leave CUDA_VISIBLE_DEVICES
        # alone).
        hide_gpus = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}} if self.gpus_per_run == 0 else None
        # Retries are the driver's, not Ray's: Ray would rerun a task from the files it was first
        # given, the driver resubmits it with what its folder holds now (its last checkpoint).
        task = ray.remote(run_unit).options(
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
        parts_ref, config_dict = ray.put(in_memory(work.parts)), config.to_dict()
        updates = ray.remote(num_cpus=0)(Mailbox).remote()

        def submit(unit: Unit):
            # What the results folder holds for this unit (a checkpoint, a finished training) is
            # where it resumes.
            run = files.run(unit)
            return task.remote(config_dict, unit, parts_ref, read_folder(run.root), updates)

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
                    write_folder(files.run(unit), changed)
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
                    write_folder(run, produced, complete=True)
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
