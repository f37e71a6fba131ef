"""The study's units on Ray (`percae reproduce --executor ray`): each (model, z, seed) is a
Ray task with its share of CPUs and GPUs (0.25 GPU: four trainings share one), on a Ray
started for the study or on an existing cluster (`--address`).

Workers need no shared file system: the study's data travels once through Ray's object
store, a task works in a temporary folder of its own (`unit_folders`), starting from the files
the results folder already holds for its unit, and returns its run folder's files (`worker`);
the driver (`executor`) writes them into the results folder atomically, the files that mark a
step finished last, as the local executor would. After each epoch a task also sends what
changed in its folder (the checkpoint, the history) to a mailbox actor, without waiting, and
the driver writes it too: a driver killed and restarted skips the finished units and resumes
the others from their last checkpoint, as the local executor does. A task whose worker dies is
resubmitted by the driver (up to `max_retries` times) from what its run folder holds then: its
last checkpoint. The Ray processes a killed driver started are ended by the next Ray study
(`processes`).
"""

from .executor import RayExecutor
from .processes import end_abandoned_rays
from .unit_folders import UNIT_FOLDER_PREFIX, remove_abandoned_unit_folders

__all__ = [
    "UNIT_FOLDER_PREFIX",
    "RayExecutor",
    "end_abandoned_rays",
    "remove_abandoned_unit_folders",
]
