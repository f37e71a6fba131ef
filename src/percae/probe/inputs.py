"""`percae probe` from its files: .npy arrays, or folders `percae encode` wrote."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import ConfigError
from ..files import read_json
from .evaluate import probe_embeddings

LOG = logging.getLogger(__name__)


def read_embeddings(path) -> tuple[str, np.ndarray, dict | None]:
    """(name, embeddings, what `percae encode` recorded of them) of a .npy file (its stem, no
    record) or of a folder `percae encode --out DIR` wrote (its name, encoding.json)."""
    from ..arrays import load_array
    from ..layout import EncodedFiles

    path = Path(path)
    if path.is_dir():
        files = EncodedFiles(path)
        if not files.record.exists():
            raise ConfigError(
                f"--embeddings {path} is a folder, but not one `percae encode --out` wrote (no "
                f"{files.record.name}); give its .npy file, or encode into a new folder"
            )
        return path.name, load_array(files.embeddings, "--embeddings"), read_json(files.record)
    return path.stem, load_array(path, "--embeddings"), None


def probe_files(
    embeddings: list,
    out,
    targets=None,
    groups=None,
    test_embeddings: list = (),
    test_targets=None,
    task: str | None = None,
    log: Callable[[str], None] = LOG.info,
    **options,
) -> dict:
    """`percae probe` from its files: each --embeddings a .npy file or a folder `percae encode`
    wrote (its targets and groups then need not be given); warns where the embeddings are of
    the images the autoencoder trained on."""
    from ..arrays import load_array
    from ..layout import EncodedFiles

    read = [read_embeddings(p) for p in embeddings]
    names = [name for name, _, _ in read]
    if len(set(names)) != len(names):
        raise ConfigError(f"--embeddings need distinct names (theirs: {', '.join(names)})")
    if test_embeddings and len(test_embeddings) != len(embeddings):
        raise ConfigError("--test-embeddings: give one for each --embeddings, in the same order")
    records = [(p, r) for p, (_, _, r) in zip(embeddings, read) if r is not None]

    def from_folders(what: str, given_path):
        if given_path is not None:
            return load_array(given_path, f"--{what}")
        found = [EncodedFiles(p) for p, _ in records]
        arrays = [
            load_array(getattr(f, what), f"--{what}") for f in found if getattr(f, what).exists()
        ]
        for other in arrays[1:]:
            if not np.array_equal(other, arrays[0]):
                raise ConfigError(
                    f"the --embeddings folders hold different {what}: they are not of the same "
                    f"images; give --{what}"
                )
        return arrays[0] if arrays else None

    y = from_folders("targets", targets)
    if y is None:
        raise ConfigError(
            "--targets is needed: give a .npy of targets, or --embeddings folders that "
            "`percae encode --out DIR` wrote from a dataset's part"
        )
    tasks = {r["task"] for _, r in records if r.get("task")}
    if task is None:
        task = tasks.pop() if len(tasks) == 1 else "position"
    trained_on = [
        f"{p} ({r['part']})" for p, r in records if r.get("part") in ("autoencoder", "all")
    ]
    if trained_on:
        log(
            f"warning: {', '.join(trained_on)} hold(s) embeddings of images the autoencoder "
            "trained on: a probe of them measures memory as much as use; encode --part "
            "predictor (and test) for the study's measure"
        )
    tests = [read_embeddings(p)[1] for p in test_embeddings]
    return probe_embeddings(
        {name: z for name, z, _ in read},
        y,
        out,
        task=task,
        groups=from_folders("groups", groups),
        test_embeddings=dict(zip(names, tests)) if tests else None,
        test_targets=load_array(test_targets, "--test-targets") if test_targets else None,
        log=log,
        **options,
    )
