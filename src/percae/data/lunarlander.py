"""The LunarLander collection: random-policy rollouts of gymnasium's LunarLander-v3,
frames resized to H x W, each labelled with the lander's centre in pixels.

Layout of a collection directory:
    images.npy    uint8 (N, H, W, 3)
    positions.npy float32 (N, 2), (x, y) in pixels of the stored image, x right, y down
    rollouts.npy  int32 (N,), rollout index of each frame
    meta.json     every generation setting, the seed, versions, the filter's count
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import JsonConfig, MAX_SEED, setting
from ..files import atomic_write_json, check_output_folder, filled_in_place
from ..progress import progress_bar
from ..provenance import versions
from . import DataError, ImageSet, StudyData, check_image_size, split_by_group

# What a collection's meta.json records the versions of.
COLLECTION_PACKAGES = ("percae", "gymnasium", "box2d", "numpy", "pillow")

# Half the rollouts are unaltered (autoencoder train/validation: 2 at least), half altered
# (predictor train/validation and test: 3 at least).
MIN_ROLLOUTS = 5


@dataclass
class LunarLanderConfig(JsonConfig):
    error = DataError
    rollouts: int = 1400
    steps: int = setting(150, min=1)
    image_size: int = 64
    seed: int = setting(0, min=0, max=MAX_SEED)
    workers: int = setting(0, min=0)  # 0: one per CPU core, at most 8

    def validate(self) -> None:
        super().validate()
        if self.rollouts < MIN_ROLLOUTS:
            raise DataError(
                f"--rollouts must be at least {MIN_ROLLOUTS} (2 unaltered rollouts to split for "
                "the autoencoders, 3 altered ones for the predictors' training, validation and "
                f"test), got {self.rollouts}"
            )
        check_image_size(self.image_size)


def lunar_lander_module():
    """gymnasium's LunarLander (its environment and its geometry), or a one-line hint to install
    it."""
    try:
        from gymnasium.envs.box2d import lunar_lander
    except (
        Exception
    ) as e:  # ImportError, or gymnasium's DependencyNotInstalled when Box2D is missing
        raise DataError(
            f"generating a LunarLander collection needs gymnasium with Box2D ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else e!r}): pip install 'percae[lunarlander]'"
        ) from None
    return lunar_lander


def lander_pixel_position(
    world_x: float, world_y: float, height: int, width: int
) -> tuple[float, float]:
    """Lander centre in pixels of an H x W frame (x right, y down) from Box2D metres: the
    viewport gymnasium draws (VIEWPORT_W x VIEWPORT_H pixels at SCALE pixels per metre) scaled to
    the frame."""
    geometry = lunar_lander_module()
    x = world_x * geometry.SCALE / geometry.VIEWPORT_W * width
    y = height - world_y * geometry.SCALE / geometry.VIEWPORT_H * height
    return x, y


def _rollout_seed(seed: int, rollout: int) -> int:
    # Each rollout gets its own stream, so the collection does not depend on the worker count.
    return int(np.random.SeedSequence([seed, rollout]).generate_state(1)[0])


_ENV = None


def _make_env():
    lunar_lander_module()  # a missing gymnasium or Box2D: the one-line hint
    import gymnasium as gym

    # The unwrapped env keeps simulating after termination, as in the study.
    return gym.make("LunarLander-v3", render_mode="rgb_array").unwrapped


def simulate_rollout(rollout: int, steps: int, image_size: int, seed: int, env=None):
    """One rollout: (frames uint8 (T, S, S, 3), positions float32 (T, 2)).

    The label is read from the same physics state that was rendered, before stepping.
    """
    from PIL import Image

    global _ENV
    if env is None:
        if _ENV is None:
            _ENV = _make_env()
        env = _ENV
    s = _rollout_seed(seed, rollout)
    env.reset(seed=s)
    env.action_space.seed(s)
    frames = np.empty((steps, image_size, image_size, 3), dtype=np.uint8)
    positions = np.empty((steps, 2), dtype=np.float32)
    for t in range(steps):
        frame = env.render()
        pos = env.lander.position
        positions[t] = lander_pixel_position(pos.x, pos.y, image_size, image_size)
        img = Image.fromarray(frame).resize((image_size, image_size), Image.Resampling.BILINEAR)
        frames[t] = np.asarray(img)
        env.step(env.action_space.sample())
    return frames, positions


def _worker(args):
    return args[0], *simulate_rollout(*args)


def onscreen(positions: np.ndarray, image_size: int) -> np.ndarray:
    x, y = positions[:, 0], positions[:, 1]
    return (x >= 0) & (x < image_size) & (y >= 0) & (y < image_size)


def generate_lunarlander(
    out: str | os.PathLike, config: LunarLanderConfig, progress: bool = True
) -> Path:
    """Generate the collection into `out` (written to a temporary folder, then renamed)."""
    config.validate()
    lunar_lander_module()  # gymnasium and Box2D present, before any file
    out = Path(out)
    check_collection_folder(out)
    busy = lambda owner: DataError(  # noqa: E731
        f"another percae is generating a collection into {out} ({owner}); wait for it to end, "
        "or choose another folder (or delete that folder if its writer is gone)"
    )
    with filled_in_place(out, busy) as tmp:
        S, T, R = config.image_size, config.steps, config.rollouts
        n_unaltered = R // 2
        full = np.lib.format.open_memmap(
            tmp / "frames.tmp.npy", mode="w+", dtype=np.uint8, shape=(R * T, S, S, 3)
        )
        positions = np.empty((R * T, 2), dtype=np.float32)
        rollouts = np.empty(R * T, dtype=np.int32)
        keep = np.empty(R * T, dtype=bool)
        workers = config.workers or min(os.cpu_count() or 1, 8)
        jobs = [(r, T, S, config.seed) for r in range(R)]
        bar = progress_bar(
            total=R, desc="LunarLander rollouts", unit="rollout", disable=not progress
        )
        with mp.get_context("spawn").Pool(workers) as pool:
            for r, frames, pos in pool.imap_unordered(
                _worker, jobs, chunksize=max(1, min(16, R // (4 * workers)))
            ):
                sl = slice(r * T, (r + 1) * T)
                full[sl] = frames
                positions[sl] = pos
                rollouts[sl] = r
                keep[sl] = True if r < n_unaltered else onscreen(pos, S)
                bar.update(1)
        bar.close()
        n = int(keep.sum())
        images = np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, S, S, 3)
        )
        kept = np.flatnonzero(keep)
        for start in range(0, n, 8192):
            images[start : start + 8192] = full[kept[start : start + 8192]]
        images.flush()
        del images, full
        (tmp / "frames.tmp.npy").unlink()
        np.save(tmp / "positions.npy", positions[kept])
        np.save(tmp / "rollouts.npy", rollouts[kept])
        altered_frames = (R - n_unaltered) * T
        removed = int((~keep).sum())
        meta = {
            "dataset": "lunarlander",
            "environment": "LunarLander-v3",
            "policy": "uniform random (action_space.sample, seeded per rollout)",
            "config": config.to_dict(),
            "frames": n,
            "unaltered_rollouts": n_unaltered,
            "altered_rollouts": R - n_unaltered,
            "offscreen_removed": removed,
            "offscreen_removed_fraction_of_altered": removed / altered_frames
            if altered_frames
            else 0.0,
            "label": (
                "lander centre (x right, y down) in pixels of the stored image, read from the "
                "rendered state"
            ),
            "versions": versions(COLLECTION_PACKAGES),
        }
        atomic_write_json(tmp / "meta.json", meta)
    return out


def check_collection_folder(out: Path, option: str = "--out") -> None:
    """Refuse, before any work, a place a new collection cannot go (`option`: how the command
    names it: `percae data lunarlander --out`, or a study's --root, where one is generated)."""
    if (out / "meta.json").exists():
        raise DataError(f"{out} already holds a collection; choose another {option} or delete it")
    check_output_folder(out, option)
    if out.is_dir() and any(out.iterdir()):
        held = next(
            (
                what
                for marker, what in (
                    ("study_config.json", "a percae study's results"),
                    ("train_config.json", "a percae training run"),
                    ("model_config.json", "a percae model"),
                )
                if (out / marker).exists()
            ),
            "other files",
        )
        if option == "--out":
            raise DataError(
                f"--out {out} is not empty (it holds {held}); choose a new or empty folder"
            )
        raise DataError(
            f"{option} {out} is not a LunarLander collection and not empty (it holds {held}): give "
            f"{option} a collection, or a new or empty folder to generate one into"
        )


@dataclass
class LunarLanderCollection:
    images: np.ndarray
    positions: np.ndarray
    rollouts: np.ndarray
    meta: dict


def load_lunarlander(path: str | os.PathLike) -> LunarLanderCollection:
    """Open a collection; images are memory-mapped, never copied."""
    path = Path(path)
    files = ["images.npy", "positions.npy", "rollouts.npy", "meta.json"]
    missing = [f for f in files if not (path / f).exists()]
    if missing:
        raise DataError(
            f"{path} is not a LunarLander collection (missing {', '.join(missing)}); "
            f"create one with `percae data lunarlander --out {path}`"
        )
    try:
        images = np.load(path / "images.npy", mmap_mode="r")
        positions = np.load(path / "positions.npy")
        rollouts = np.load(path / "rollouts.npy")
    except (ValueError, OSError, EOFError) as e:
        raise DataError(
            f"{path}: a collection file is truncated or malformed ({e}); regenerate the collection"
        ) from None
    for name, array, kinds in (
        ("images.npy", images, "u"),
        ("positions.npy", positions, "fiu"),
        ("rollouts.npy", rollouts, "iu"),
    ):
        if array.dtype.kind not in kinds:
            raise DataError(
                f"{path}/{name} holds {array.dtype} values, not numbers of the right kind; "
                "regenerate the collection"
            )
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(
            f"{path}/meta.json is not valid JSON ({e}); regenerate the collection"
        ) from None
    n = len(images)
    if n == 0:
        raise DataError(
            f"{path} holds no frames (images.npy is empty); regenerate the collection with more "
            "rollouts"
        )
    unaltered = meta.get("unaltered_rollouts") if isinstance(meta, dict) else None
    # The split needs it; a hand-made or truncated meta.json would otherwise fail deep inside the
    # study.
    if not isinstance(unaltered, int) or not 0 < unaltered <= (
        int(rollouts.max()) if len(rollouts) else 0
    ):
        raise DataError(
            f"{path}/meta.json lacks a valid 'unaltered_rollouts' (the number of unaltered "
            f"rollouts that come first; got {unaltered!r}); regenerate the collection with "
            "`percae data lunarlander`"
        )
    if positions.shape != (n, 2) or rollouts.shape != (n,):
        raise DataError(
            f"{path}: images, positions and rollouts disagree in length "
            f"({n}, {positions.shape}, {rollouts.shape}); regenerate the collection"
        )
    bad = ~np.isfinite(positions).all(axis=1)
    if bad.any():
        raise DataError(
            f"{path}/positions.npy holds {int(bad.sum())} NaN or infinite position(s) (first: "
            f"frame {int(np.flatnonzero(bad)[0])}); regenerate the collection"
        )
    return LunarLanderCollection(
        images, positions.astype(np.float32), rollouts.astype(np.int64), meta
    )


def lunarlander_study_data(
    path: str | os.PathLike, seed: int = 0, image_size: int | None = None
) -> StudyData:
    """Table I for LunarLander: autoencoders on the unaltered rollouts, predictors on
    80% of the altered rollouts, test on the other 20%, all split by rollout."""
    c = load_lunarlander(path)
    base = ImageSet(c.images, targets=c.positions, groups=c.rollouts, name="lunarlander")
    n_unaltered = c.meta["unaltered_rollouts"]
    unaltered = np.flatnonzero(c.rollouts < n_unaltered)
    altered = np.flatnonzero(c.rollouts >= n_unaltered)
    pred_pos, test_pos = split_by_group(c.rollouts[altered], 0.2, seed)
    removed = c.meta.get("offscreen_removed_fraction_of_altered", 0.0)
    return StudyData(
        dataset="lunarlander",
        task="position",
        autoencoder=base.subset(unaltered),
        predictor=base.subset(altered[pred_pos]),
        test=base.subset(altered[test_pos]),
        notes=[f"off-screen filter removed {removed:.1%} of the altered frames"],
    ).check_native_size(image_size, path)
