"""Where a study's units run: `LocalExecutor`, one after another in this process (the Ray
executor is `percae.cluster.RayExecutor`)."""

from __future__ import annotations

from typing import Callable


from ..layout import StudyFiles
from .config import StudyConfig
from .data import StudyParts
from .unit import EpochHook, Unit, run_one


class LocalExecutor:
    """The units one after another in this process (`--executor local`)."""

    def start(self, config: StudyConfig) -> None:
        pass

    def stop(self) -> None:
        pass

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
        for unit in todo:
            hook = (lambda phase, row, unit=unit: on_epoch(unit, phase, row)) if on_epoch else None
            run_one(
                config,
                unit.model,
                unit.z,
                unit.seed,
                parts,
                files.run(unit),
                progress,
                log,
                hook,
            )
