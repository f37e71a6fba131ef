"""A study's data: the perceptual network it uses, its dataset (generated, capped and
checked) and the splits every unit shares (`StudyParts`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import provenance
from ..config import JsonConfig, REQUIRED, setting
from ..data import (
    ImageSet,
    StudyData,
    load_study_data,
    split,
    split_by_group,
)
from ..data.lunarlander import generate_lunarlander
from ..loss import LOSSES
from ..perceptual_networks import (
    build_perceptual_network,
    check_feature_size,
    check_perceptual_net_name,
    perceptual_net_note,
)
from ..layout import StudyFiles
from .config import StudyConfig

# Progress messages go to the "percae" logger unless a `log` callable is given (the CLI sets the
# level).
LOG = logging.getLogger(__name__)


@dataclass
class StudyNotes(JsonConfig):
    """notes.json: what the tables must say of the data (e.g. the frames the off-screen filter
    removed) and of the perceptual network chosen for the study."""

    named_by_option = False
    data: tuple[str, ...] = setting(REQUIRED)
    perceptual_net: str | None = None
    # Images (and groups) of each split: autoencoder_train, autoencoder_val, predictor_train,
    # predictor_val, test, test_groups (a study of earlier versions has none).
    sizes: dict | None = None


def resolve_perceptual_net(
    config: StudyConfig, log: Callable[[str], None] = LOG.info
) -> tuple[str | None, dict[str, str]]:
    """(note on the study's network, fingerprint of each network's weights), every loss of the
    study built now, so that a bad network, layer or weights file, a layer that leaves the
    images under 2 x 2 features, AlexNet's weights neither cached nor downloadable, or a loss
    whose extra is missing are refused before any file. A study of pixel-wise models alone
    builds no network."""
    check_perceptual_net_name(config.train.perceptual_net)
    fingerprints = {}
    size = config.image_size or NATIVE_IMAGE_SIZE.get(config.dataset, 64)
    for net, weights in config.networks().items():
        network = build_perceptual_network(net, weights)
        check_feature_size(network, net, size)
        fingerprints[net] = provenance.network_fingerprint(network)
    for variant in config.variants():
        if not variant.uses_network:
            LOSSES[variant.loss].from_settings()  # a library of its own: installed?
    note = (
        perceptual_net_note(config.perceptual_net, config.preset) if config.perceptual_net else None
    )
    if note:
        log(f"note: {note}")
    return note, fingerprints


# The image size of a dataset whose images have one (a folder's are resized to 64 px unless
# --image-size says otherwise, a LunarLander collection's is chosen when it is generated).
NATIVE_IMAGE_SIZE = {"stl10": 96}


def _limit(images: ImageSet, part: str, limit: int | None, seed: int) -> tuple[ImageSet, str]:
    """At most about `limit` of a part's images, drawn at random, and the note that the tables
    give of the cap ("" where the part is whole)."""
    if limit is None or len(images) <= limit:
        return images, ""
    groups = images.selected_groups()
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    if len(unique) < len(groups):
        # Keep whole groups (rollouts) so that later splits by group stay leak-free.
        chosen, total = [], 0
        counts = dict(zip(*np.unique(groups, return_counts=True)))
        for g in rng.permutation(unique):
            if total >= limit:
                break
            chosen.append(g)
            total += counts[g]
        positions, how = np.flatnonzero(np.isin(groups, chosen)), ", whole rollouts at a time"
    else:
        positions, how = np.sort(rng.choice(len(images), size=limit, replace=False)), ""
    limited = images.subset(positions)
    return limited, (
        f"the {part} part holds {len(limited)} of its {len(images)} images "
        f"(max_{part}_images = {limit}; drawn at random{how})"
    )


def data_root(config: StudyConfig, files: StudyFiles) -> Path:
    """Where the study's data is: --root, or for LunarLander by default RESULTS/data."""
    return Path(config.root) if config.root is not None else files.data


def needs_generation(config: StudyConfig, files: StudyFiles) -> bool:
    return config.dataset == "lunarlander" and not (data_root(config, files) / "meta.json").exists()


def prepare_data(
    config: StudyConfig,
    files: StudyFiles,
    log: Callable[[str], None] = LOG.info,
    progress: bool = True,
) -> StudyData:
    """Load (LunarLander: generate if missing) the dataset, apply the preset's size caps and
    refuse data no study can use (`StudyData.validate`)."""
    root = data_root(config, files)
    if needs_generation(config, files):
        log(
            f"generating the LunarLander collection ({config.rollouts} rollouts x {config.steps} "
            f"steps) in {root}"
        )
        generate_lunarlander(root, config.lunarlander_config(), progress=progress)
    data = load_study_data(config.dataset, root, seed=config.seed, image_size=config.image_size)
    for offset, (part, limit) in enumerate(
        (
            ("autoencoder", config.max_autoencoder_images),
            ("predictor", config.max_predictor_images),
            ("test", config.max_test_images),
        )
    ):
        limited, note = _limit(getattr(data, part), part, limit, config.seed + offset)
        setattr(data, part, limited)
        if note:
            data.notes.append(note)
    data.validate(root)
    return data


@dataclass
class StudyParts:
    """What every run of a study shares: the Table I parts, the autoencoder's and the
    predictors' train/validation splits (by group), the targets, and the test images the
    figure shows."""

    data: StudyData
    ae_train: ImageSet
    ae_val: ImageSet
    pred_train: np.ndarray  # positions in data.predictor (and in its embeddings)
    pred_val: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    sample: np.ndarray  # positions in data.test

    @classmethod
    def split(cls, data: StudyData, seed: int) -> "StudyParts":
        ae_train, ae_val = split(data.autoencoder, 0.2, seed)
        pred_train, pred_val = split_by_group(data.predictor.selected_groups(), 0.2, seed)
        return cls(
            data,
            ae_train,
            ae_val,
            pred_train,
            pred_val,
            data.targets(data.predictor.subset(pred_train)),
            data.targets(data.predictor.subset(pred_val)),
            data.targets(data.test),
            np.linspace(0, len(data.test) - 1, num=min(6, len(data.test))).astype(int),
        )


def split_sizes(parts: StudyParts) -> dict:
    """How many images each split of a study holds, and the test set's groups (rollouts)."""
    return {
        "autoencoder_train": len(parts.ae_train),
        "autoencoder_val": len(parts.ae_val),
        "predictor_train": len(parts.pred_train),
        "predictor_val": len(parts.pred_val),
        "test": len(parts.data.test),
        "test_groups": int(len(np.unique(parts.data.test.selected_groups()))),
    }
