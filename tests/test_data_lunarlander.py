"""The LunarLander collection: labels agree with the rendered lander, come from the
rendered physics state, the off-screen filter and the meta record are exact, the
collection is reproducible, and no split leaks a rollout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from percae.data import DataError, ImageSet, split, split_by_group
from percae.data.lunarlander import (
    LunarLanderConfig,
    generate_lunarlander,
    lander_pixel_position,
    load_lunarlander,
    lunarlander_study_data,
    simulate_rollout,
)

# gymnasium's LunarLander draws the lander body and legs in this colour.
LANDER_RGB = np.array([128.0, 102.0, 230.0])
COLOUR_DISTANCE = 60.0


def lander_centroid(frame: np.ndarray, min_pixels: int = 3):
    """Centre of the lander-coloured pixels (x right, y down, pixel centres at +0.5), or None."""
    mask = np.linalg.norm(frame.astype(np.float64) - LANDER_RGB, axis=-1) < COLOUR_DISTANCE
    if mask.sum() < min_pixels:
        return None
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def my_pixel_position(wx, wy, height, width):
    # 600 x 400 viewport at 30 px per metre, y flipped: written here from gymnasium's constants.
    return wx * 30.0 / 600.0 * width, height - wy * 30.0 / 400.0 * height


class RecordingEnv:
    """Wraps a real LunarLander env and records, at every render, the frame and the lander
    position."""

    def __init__(self, env):
        self.env = env
        self.renders = []

    def render(self):
        frame = self.env.render()
        p = self.env.lander.position
        self.renders.append((frame.copy(), (float(p.x), float(p.y))))
        return frame

    def __getattr__(self, name):
        return getattr(self.env, name)


@pytest.fixture(scope="module")
def gym_env():
    import gymnasium as gym

    env = gym.make("LunarLander-v3", render_mode="rgb_array").unwrapped
    yield env
    env.close()


# --- the pixel formula ------------------------------------------------------------------


@pytest.mark.parametrize(
    "wx, wy, h, w",
    [
        (10.0, 20.0 / 3.0, 64, 64),
        (0.0, 0.0, 64, 64),
        (20.0, 40.0 / 3.0, 96, 96),
        (3.3, 7.1, 400, 600),
        (12.5, 2.25, 64, 128),
    ],
)
def test_pixel_formula_matches_the_viewport_geometry(wx, wy, h, w):
    x, y = lander_pixel_position(wx, wy, h, w)
    ex, ey = my_pixel_position(wx, wy, h, w)
    assert x == pytest.approx(ex, abs=1e-9) and y == pytest.approx(ey, abs=1e-9)


def test_the_geometry_is_gymnasiums_and_what_the_collections_were_labelled_with():
    """percae reads SCALE and the viewport from gymnasium; if gymnasium changes them, positions
    mean something else than in the collections made so far and the paper: this fails first."""
    from gymnasium.envs.box2d import lunar_lander

    assert (lunar_lander.SCALE, lunar_lander.VIEWPORT_W, lunar_lander.VIEWPORT_H) == (
        30.0,
        600,
        400,
    )


def test_generation_without_gymnasium_is_one_line_naming_the_extra_before_any_file(
    monkeypatch, tmp_path
):
    import sys

    from percae.data import DataError
    from percae.data.lunarlander import LunarLanderConfig, generate_lunarlander

    monkeypatch.setitem(sys.modules, "gymnasium.envs.box2d", None)  # as if it were not installed
    with pytest.raises(DataError, match=r"pip install 'percae\[lunarlander\]'"):
        generate_lunarlander(tmp_path / "c", LunarLanderConfig(rollouts=5, steps=2))
    assert list(tmp_path.iterdir()) == []


def test_pixel_formula_hand_values():
    # Centre of the viewport (10 m, 6.667 m) is the centre of a 64 px frame; the origin is the
    # bottom-left corner.
    assert lander_pixel_position(10.0, 20.0 / 3.0, 64, 64) == pytest.approx((32.0, 32.0))
    assert lander_pixel_position(0.0, 0.0, 64, 64) == pytest.approx((0.0, 64.0))
    assert lander_pixel_position(20.0, 40.0 / 3.0, 64, 64) == pytest.approx((64.0, 0.0))


@pytest.mark.slow
def test_pixel_formula_agrees_with_the_full_resolution_renderer(gym_env):
    """At the viewport's own 600 x 400 resolution, the formula lands on the drawn lander."""
    rng = np.random.default_rng(0)
    checked = 0
    for seed in (11, 12):
        gym_env.reset(seed=seed)
        for t in range(35):
            frame = gym_env.render()
            assert frame.shape == (400, 600, 3)
            p = gym_env.lander.position
            x, y = lander_pixel_position(p.x, p.y, 400, 600)
            c = lander_centroid(frame, min_pixels=50)
            if c is not None and 20 < y < 380 and 20 < x < 580:
                # The legs hang below the body, so the coloured centroid sits a few pixels off the
                # centre.
                assert np.hypot(c[0] - x, c[1] - y) < 6.0, (seed, t, c, (x, y))
                checked += 1
            gym_env.step(int(rng.integers(4)))
    assert checked >= 30


# --- labels against the stored frames ---------------------------------------------------


def test_labels_sit_on_the_lander_in_stored_frames(collection):
    S = collection.images.shape[1]
    checked = 0
    for i in range(len(collection.images)):
        c = lander_centroid(np.asarray(collection.images[i]), min_pixels=4)
        x, y = collection.positions[i]
        if c is None or not (3 <= x < S - 3 and 3 <= y < S - 3):
            continue
        assert np.hypot(c[0] - x, c[1] - y) < 1.5, (i, c, (x, y))
        checked += 1
    assert checked >= 60


def test_label_is_read_from_the_rendered_state(gym_env):
    """Re-simulate through a recording env: each label is the pixel position of the lander in
    the very state that was rendered into the same frame (not the state after the step)."""
    S, T = 64, 25
    rec = RecordingEnv(gym_env)
    frames, positions = simulate_rollout(4, T, S, 0, env=rec)
    assert len(rec.renders) == T
    moved = 0
    for t, (full, (wx, wy)) in enumerate(rec.renders):
        expected = my_pixel_position(wx, wy, S, S)
        np.testing.assert_allclose(positions[t], expected, atol=1e-3)
        resized = np.asarray(Image.fromarray(full).resize((S, S), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(frames[t], resized)
        if t + 1 < T:
            nxt = my_pixel_position(*rec.renders[t + 1][1], S, S)
            moved += np.hypot(expected[0] - nxt[0], expected[1] - nxt[1]) > 0.05
    assert moved >= T // 2  # the lander moves, so a label one step off would have been caught
    # After the last frame the env was stepped once more: the last label is not the final state.
    final = my_pixel_position(gym_env.lander.position.x, gym_env.lander.position.y, S, S)
    assert np.hypot(positions[-1][0] - final[0], positions[-1][1] - final[1]) > 0.05


@pytest.mark.slow
def test_collection_is_the_simulated_rollouts(collection):
    """Each rollout in the collection is simulate_rollout's output: unaltered rollouts whole,
    altered rollouts with exactly the frames whose label lies off [0, S) x [0, S) removed."""
    cfg = collection.meta["config"]
    S, T, seed = cfg["image_size"], cfg["steps"], cfg["seed"]
    half = collection.meta["unaltered_rollouts"]
    offscreen_seen = 0
    for r in range(cfg["rollouts"]):
        frames, positions = simulate_rollout(r, T, S, seed)
        x, y = positions[:, 0], positions[:, 1]
        inside = (x >= 0) & (x < S) & (y >= 0) & (y < S)
        keep = np.ones(T, bool) if r < half else inside
        offscreen_seen += int((~inside).sum())
        mine = collection.rollouts == r
        np.testing.assert_array_equal(np.asarray(collection.images[mine]), frames[keep])
        np.testing.assert_array_equal(collection.positions[mine], positions[keep])
    assert offscreen_seen > 0  # the tiny collection does exercise the filter


# --- the off-screen filter and meta ------------------------------------------------------


def test_offscreen_filter_and_meta(collection):
    meta = collection.meta
    cfg = meta["config"]
    S, T, R = cfg["image_size"], cfg["steps"], cfg["rollouts"]
    half = meta["unaltered_rollouts"]
    assert half == R // 2 and meta["altered_rollouts"] == R - half
    altered = collection.rollouts >= half
    p = collection.positions[altered]
    assert ((p[:, 0] >= 0) & (p[:, 0] < S) & (p[:, 1] >= 0) & (p[:, 1] < S)).all()
    counts = np.bincount(collection.rollouts, minlength=R)
    assert (counts[:half] == T).all()
    assert (counts[half:] <= T).all()
    assert meta["offscreen_removed"] == (R - half) * T - int(altered.sum())
    assert meta["offscreen_removed"] > 0
    assert meta["offscreen_removed_fraction_of_altered"] == pytest.approx(
        meta["offscreen_removed"] / ((R - half) * T)
    )
    assert meta["frames"] == len(collection.images) == R * T - meta["offscreen_removed"]
    # Frames of one rollout are stored in time order, rollouts in order.
    assert (np.diff(collection.rollouts) >= 0).all()
    assert collection.images.dtype == np.uint8 and collection.images.shape[1:] == (S, S, 3)
    assert collection.positions.dtype == np.float32


@pytest.mark.slow
def test_generation_is_reproducible_and_independent_of_workers(tmp_path):
    a = load_lunarlander(
        generate_lunarlander(
            tmp_path / "a",
            LunarLanderConfig(rollouts=5, steps=10, seed=0, workers=1),
            progress=False,
        )
    )
    b = load_lunarlander(
        generate_lunarlander(
            tmp_path / "b",
            LunarLanderConfig(rollouts=5, steps=10, seed=0, workers=2),
            progress=False,
        )
    )
    c = load_lunarlander(
        generate_lunarlander(
            tmp_path / "c",
            LunarLanderConfig(rollouts=5, steps=10, seed=1, workers=2),
            progress=False,
        )
    )
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.rollouts, b.rollouts)
    assert a.meta["offscreen_removed"] == b.meta["offscreen_removed"]
    assert a.positions.shape != c.positions.shape or not np.array_equal(a.positions, c.positions)
    n = min(len(a.images), len(c.images))
    assert not np.array_equal(np.asarray(a.images[:n]), np.asarray(c.images[:n]))
    # No temporary files are left next to the collections.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "images.npy",
        "meta.json",
        "positions.npy",
        "rollouts.npy",
    ]


def test_generation_refuses_to_overwrite_and_bad_settings(collection_path, tmp_path):
    with pytest.raises(DataError, match="already holds"):
        generate_lunarlander(
            collection_path, LunarLanderConfig(rollouts=5, steps=2, workers=1), progress=False
        )
    with pytest.raises(DataError):
        generate_lunarlander(
            tmp_path / "x", LunarLanderConfig(rollouts=3, steps=2, workers=1), progress=False
        )
    assert not (tmp_path / "x").exists()


def test_generation_removes_what_a_killed_generation_left(tmp_path):
    import os
    import socket

    killed = tmp_path / ".c.partial.abc123"  # killed before it wrote its owner, two hours ago
    killed.mkdir()
    (killed / "frames.tmp.npy").write_bytes(b"0" * 1000)
    os.utime(killed, (os.path.getmtime(killed) - 7200,) * 2)
    dead = tmp_path / ".c.partial.def456"  # its owner's process is gone
    dead.mkdir()
    (dead / "generating.pid").write_text(f"{socket.gethostname()} 999999999")
    other = tmp_path / ".d.partial.xyz"  # another collection's
    other.mkdir()
    generate_lunarlander(
        tmp_path / "c", LunarLanderConfig(rollouts=5, steps=2, workers=1), progress=False
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.partial.xyz", "c"]
    assert not (tmp_path / "c" / "generating.pid").exists()


@pytest.mark.parametrize(
    "owner",
    [
        "HERE 1",  # its writer (init here) is running
        None,  # no owner yet, but just made: its writer may be starting
        "some-other-host 999999999",  # another machine's (a shared disk): not ours to judge
    ],
)
def test_generation_into_a_folder_another_is_generating_is_refused_and_spares_it(owner, tmp_path):
    import socket

    running = tmp_path / ".c.partial.ghi789"
    running.mkdir()
    if owner is not None:
        (running / "generating.pid").write_text(owner.replace("HERE", socket.gethostname()))
    with pytest.raises(DataError, match=r"another percae is generating .*\.c\.partial\.ghi789"):
        generate_lunarlander(
            tmp_path / "c", LunarLanderConfig(rollouts=5, steps=2, workers=1), progress=False
        )
    assert [p.name for p in tmp_path.iterdir()] == [".c.partial.ghi789"]


def test_load_rejects_a_folder_that_is_not_a_collection(tmp_path):
    with pytest.raises(DataError, match="missing"):
        load_lunarlander(tmp_path)


@pytest.mark.parametrize(
    "meta",
    [
        '{"frames": 3',
        '{"frames": 3}',
        "[]",
        '{"unaltered_rollouts": 0}',
        '{"unaltered_rollouts": "2"}',
    ],
)
def test_load_rejects_a_meta_json_without_the_split(collection_path, tmp_path, meta):
    """A broken or hand-made meta.json gets one clear error at load, not a KeyError inside the
    study."""
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(collection_path, copy)
    (copy / "meta.json").write_text(meta)
    with pytest.raises(DataError, match="meta.json"):
        load_lunarlander(copy)


# --- splits never leak ----------------------------------------------------------------------


def test_study_parts_share_no_rollout(collection_path, collection):
    half = collection.meta["unaltered_rollouts"]
    for seed in (0, 1, 2):
        data = lunarlander_study_data(collection_path, seed=seed)
        ae = set(collection.rollouts[data.autoencoder.indices].tolist())
        pr = set(collection.rollouts[data.predictor.indices].tolist())
        te = set(collection.rollouts[data.test.indices].tolist())
        assert ae == set(range(half))
        assert pr and te and not (pr & te) and not (ae & (pr | te))
        assert pr | te == set(range(half, collection.meta["config"]["rollouts"]))
        all_idx = np.concatenate(
            [data.autoencoder.indices, data.predictor.indices, data.test.indices]
        )
        assert sorted(all_idx.tolist()) == list(range(len(collection.images)))
        # Targets follow their images.
        np.testing.assert_array_equal(
            data.test.selected_targets(), collection.positions[data.test.indices]
        )
        assert data.task == "position"


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_by_group_sides_share_no_group(fraction, seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 13, size=300)
    first, second = split_by_group(groups, fraction, seed)
    assert len(first) and len(second)
    assert not set(groups[first]) & set(groups[second])
    assert sorted(np.concatenate([first, second]).tolist()) == list(range(len(groups)))
    assert len(np.unique(groups)) == 13
    n_second = len(set(groups[second]))
    # About `fraction` of the groups go to the second side, never all nor none.
    assert 1 <= n_second <= 12
    assert abs(n_second - fraction * 13) <= 0.5 or n_second in (1, 12)


def test_split_by_group_errors():
    with pytest.raises(ValueError):
        split_by_group(np.arange(10), 0.0, 0)
    with pytest.raises(ValueError):
        split_by_group(np.arange(10), 1.0, 0)
    with pytest.raises(DataError):
        split_by_group(np.zeros(10, dtype=int), 0.5, 0)


def test_split_of_an_image_set_keeps_groups_apart():
    images = np.zeros((40, 8, 8, 3), np.uint8)
    groups = np.repeat(np.arange(8), 5)
    s = ImageSet(images, targets=np.arange(40.0), groups=groups)
    sub = s.subset(np.arange(5, 40))  # a subset, so positions != indices
    a, b = split(sub, 0.3, 0)
    assert not set(a.selected_groups()) & set(b.selected_groups())
    assert sorted(np.concatenate([a.indices, b.indices]).tolist()) == list(range(5, 40))
    np.testing.assert_array_equal(a.selected_targets(), a.indices.astype(float))


@pytest.mark.parametrize(
    "damage, message",
    [
        ("non-square", "images are 64 x 32 px"),
        ("63 px", "images are 63 x 63 px"),
        ("positions x 1e30", r"beyond ±1e\+06 px"),
    ],
)
def test_a_collection_no_autoencoder_can_use_is_refused_naming_what_is_wrong(
    collection_path, tmp_path, damage, message
):
    import shutil

    from percae.data import DataError, load_study_data

    root = tmp_path / "collection"
    shutil.copytree(collection_path, root)
    images, positions = np.load(root / "images.npy"), np.load(root / "positions.npy")
    if damage == "non-square":
        np.save(root / "images.npy", np.ascontiguousarray(images[:, :, :32]))
    elif damage == "63 px":
        np.save(root / "images.npy", np.ascontiguousarray(images[:, :63, :63]))
    else:
        np.save(root / "positions.npy", positions * 1e30)
    with pytest.raises(DataError, match=message):
        load_study_data("lunarlander", root).validate(root)
