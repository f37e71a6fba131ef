"""Where a study's units run. Every executor has one interface: `start(config)` (refuse, before
any file, what cannot run), `run(units, work)` (each unit by `work(unit)`, or by `work`'s parts
where it runs them elsewhere) and `stop()`. `LocalExecutor` runs them on this machine, one
after another in this process or several at once in worker processes of one thread each;
`percae.cluster.RayExecutor` as Ray tasks."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from multiprocessing.connection import wait

from .config import StudyConfig
from .unit import Unit, UnitWork


class LocalExecutor:
    """The units on this machine (`--executor local`). `workers` 1: one after another in this
    process, with every thread torch takes; more: that many at once, each in a process of its
    own with one thread. A unit's results depend on its thread count alone (one thread for any
    `workers` above 1), never on which worker ran it or when. Small steps (the quick preset's
    batch of 16) use one thread better than two: on 2 cores two such units at once finish
    sooner than one after another (docs/performance.md)."""

    def __init__(self, workers: int = 1):
        self.workers = workers

    def start(self, config: StudyConfig) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, units: list[Unit], work: UnitWork) -> None:
        progress = Progress(len(units), work.log, min(self.workers, len(units)))
        if self.workers <= 1:
            for unit in units:
                progress.starting(unit)
                work(unit)
                progress.finished()
        elif units:
            _run_in_workers(units, work, self.workers, progress)


class Progress:
    """The line a study says as each unit starts: which of how many, and about how long the
    rest will take at the pace of the units done so far."""

    def __init__(self, total: int, log, at_once: int = 1):
        self.total, self.log, self.at_once = total, log, at_once
        self.started, self.done, self.begun = time.perf_counter(), 0, 0

    def starting(self, unit: Unit) -> None:
        self.begun += 1
        left = ""
        if self.done >= self.at_once:  # (before that, the first units' pace is not known)
            pace = (time.perf_counter() - self.started) / self.done
            left = f"; about {pace * (self.total - self.done) / 60:.1f} min left"
        self.log(f"unit {self.begun} of {self.total}: {unit.name}{left}")

    def finished(self) -> None:
        self.done += 1


def _run_in_workers(units: list[Unit], work: UnitWork, workers: int, progress: Progress) -> None:
    """The units on `workers` processes, each unit whole on one of them; their lines and epochs
    come back to this process's log and hook. A unit that fails stops the study with its error;
    so does a worker that dies. Whatever ends this process ends the workers too (they are
    killed as it unwinds, and by the kernel if it is killed itself): a killed unit leaves its
    last checkpoint, which the next run resumes."""
    context = mp.get_context("spawn")
    todo = list(units)
    running: dict = {}  # connection -> (process, unit it runs, or None)
    config = work.config.to_dict()
    try:
        for _ in range(min(workers, len(todo))):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(config, str(work.files.root), theirs, os.getpid()),
                daemon=True,
            )
            process.start()
            theirs.close()
            running[ours] = [process, None]
        for connection in list(running):
            _give(connection, running, todo, progress)
        while running:
            sentinels = {p.sentinel: c for c, (p, _) in running.items()}
            for ready in wait([*running, *sentinels]):
                connection = sentinels.get(ready, ready)
                if connection not in running:
                    continue
                try:
                    while connection.poll():  # its messages before its end
                        _handle(connection.recv(), connection, running, todo, work, progress)
                    if ready is connection:
                        continue
                except EOFError:  # its end of the pipe closed: it is ending
                    pass
                process, unit = running.pop(connection)
                process.join()
                if unit is not None:  # gone while it held a unit: died, or was killed
                    raise RuntimeError(
                        f"the worker running {unit.name} ended (exit {process.exitcode}) before "
                        "its unit did; rerun the same command to resume it"
                    )
    finally:
        for process, _ in running.values():
            if process.is_alive():
                process.kill()
            process.join()


def _handle(message, connection, running, todo, work: UnitWork, progress: Progress) -> None:
    kind, unit = message[0], message[1]
    if kind == "log":
        work.log(message[2])
    elif kind == "epoch" and work.on_epoch is not None:
        work.on_epoch(unit, *message[2])
    elif kind == "failed":
        raise message[2]
    elif kind == "done":
        progress.finished()
        _give(connection, running, todo, progress)


def _give(connection, running: dict, todo: list, progress: Progress) -> None:
    unit = todo.pop(0) if todo else None
    running[connection][1] = unit
    if unit is not None:
        progress.starting(unit)
    connection.send(unit)


def _worker(config: dict, root: str, connection, parent: int) -> None:
    """A worker process: one thread; dies with its parent; runs the units it is sent in the
    study's folder and reports their lines, epochs and end."""
    import torch

    from ..layout import StudyFiles
    from .data import StudyParts, prepare_data

    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides, and ends the workers
    torch.set_num_threads(1)
    study = StudyConfig.from_dict(config)
    files = StudyFiles(root)
    data = prepare_data(study, files, log=lambda line: None, progress=False)
    work = UnitWork(study, StudyParts.split(data, study.seed), files, progress=False)
    while (unit := connection.recv()) is not None:

        def log(line: str, unit=unit) -> None:
            # Lines of several units at once interleave: each names its unit.
            named = line if line.startswith(unit.name) else f"{unit.name}: {line}"
            connection.send(("log", unit, named))

        try:
            work(
                unit,
                log=log,
                on_epoch=lambda phase, row, unit=unit: connection.send(
                    ("epoch", unit, (phase, row))
                ),
            )
        except Exception as e:  # noqa: BLE001 - the driver raises it as the study's error
            try:
                connection.send(("failed", unit, e))
            except Exception:  # noqa: BLE001 - an error that does not pickle: its words
                connection.send(("failed", unit, RuntimeError(f"{type(e).__name__}: {e}")))
            return
        connection.send(("done", unit))


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere the parent's
    unwinding kills it)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(1)
