"""Image-folder reader: decoding, resizing, the cache and the stratified parts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from replay_reliability import short_png

from percae.data import DataError, load_study_data
from percae.data.folder import folder_study_data, load_image_folder, stratified_parts


def save(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def solid(color, size=(40, 30)) -> np.ndarray:
    return np.broadcast_to(np.array(color, np.uint8), (size[1], size[0], 3))


@pytest.fixture
def folder(tmp_path):
    """Classes 'b_dog' (6 images) and 'a_cat' (4 images); cat is class 0 by name."""
    root = tmp_path / "imgs"
    for i in range(4):
        save(root / "a_cat" / f"{i}.png", solid((10 * i, 100, 200)))
    for i in range(6):
        save(root / "b_dog" / f"{i}.png", solid((200, 10 * i, 50), size=(64, 64)))
    return root


def test_classes_labels_and_pixels(folder):
    images, labels, classes = load_image_folder(folder)
    assert classes == ["a_cat", "b_dog"]
    assert images.shape == (10, 64, 64, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0] * 4 + [1] * 6)
    assert labels.dtype == np.int64
    # Samples are sorted by path within a class, as ImageFolder's make_dataset does.
    np.testing.assert_array_equal(images[2], solid((20, 100, 200), (64, 64)))
    np.testing.assert_array_equal(images[4 + 5], solid((200, 50, 50), (64, 64)))


def test_orientation_and_resize(tmp_path):
    root = tmp_path / "imgs"
    img = np.zeros((48, 80, 3), np.uint8)  # 48 rows, 80 columns
    img[:, 40:] = (0, 0, 255)  # right half blue
    img[:4, :4] = (255, 0, 0)  # top-left red
    save(root / "only" / "x.png", img)
    save(root / "only" / "gray.bmp", np.full((20, 20), 77, np.uint8))  # grayscale -> RGB
    images, _, _ = load_image_folder(root, image_size=80)
    expected = np.asarray(Image.fromarray(img).resize((80, 80), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(images[1], expected)
    assert tuple(images[1, 0, 0]) == (255, 0, 0)
    assert tuple(images[1, 40, 79]) == (0, 0, 255) and tuple(images[1, 40, 10]) == (0, 0, 0)
    np.testing.assert_array_equal(images[0], np.full((80, 80, 3), 77, np.uint8))


def files_under(root) -> dict:
    return {
        os.path.relpath(os.path.join(d, f), root): Path(d, f).read_bytes()
        for d, _, fs in os.walk(root)
        for f in fs
    }


def test_cache_is_memory_mapped_outside_the_image_folder(folder, percae_cache):
    before = files_under(folder)
    first, labels1, _ = load_image_folder(folder)
    assert files_under(folder) == before  # the user's folder is read, never written
    second, labels2, _ = load_image_folder(folder)
    assert isinstance(second, np.memmap)
    assert Path(second.filename).is_relative_to(percae_cache)
    assert not [p for p in Path(second.filename).parent.iterdir() if p.name.endswith(".tmp")]
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    np.testing.assert_array_equal(labels1, labels2)


def test_two_folders_of_one_name_have_their_own_cache(tmp_path):
    for name, color in (("one", 10), ("two", 200)):
        for c in ("a", "b"):
            for i in range(3):
                save(tmp_path / name / "imgs" / c / f"{i}.png", solid((color, color, color)))
    one, _, _ = load_image_folder(tmp_path / "one" / "imgs")
    two, _, _ = load_image_folder(tmp_path / "two" / "imgs")
    assert one.filename != two.filename
    assert int(one[0, 0, 0, 0]) == 10 and int(two[0, 0, 0, 0]) == 200


def test_cache_follows_changes(folder):
    load_image_folder(folder)
    save(folder / "a_cat" / "9.png", solid((1, 2, 3)))
    images, labels, _ = load_image_folder(folder)
    assert len(images) == 11 and labels.tolist().count(0) == 5
    np.testing.assert_array_equal(images[4], solid((1, 2, 3), (64, 64)))
    # Another size is another cache.
    assert load_image_folder(folder, image_size=96)[0].shape == (11, 96, 96, 3)


def test_corrupt_cache_is_rebuilt_and_a_killed_writers_files_removed(folder):
    cache = Path(load_image_folder(folder)[0].filename)
    cache.write_bytes(b"garbage")
    leftover = cache.parent / f".{cache.name}.abc123.tmp"  # as a killed write leaves it
    leftover.write_bytes(b"half")
    images, _, _ = load_image_folder(folder)
    assert images.shape == (10, 64, 64, 3) and int(images[0, 0, 0, 1]) == 100
    assert not leftover.exists()


def test_unwritable_cache_folder_loads_without_cache(folder, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("PERCAE_CACHE", str(tmp_path / "a_file" / "cache"))
    before = files_under(folder)
    images, labels, _ = load_image_folder(folder)
    assert images.shape == (10, 64, 64, 3) and not isinstance(images, np.memmap)
    assert int(images[0, 0, 0, 1]) == 100 and labels.tolist() == [0] * 4 + [1] * 6
    assert files_under(folder) == before


def test_hidden_folders_and_other_files_ignored(folder):
    save(folder / ".ipynb_checkpoints" / "x.png", solid((0, 0, 0)))
    (folder / "a_cat" / "notes.txt").write_text("not an image")
    _, labels, classes = load_image_folder(folder)
    assert classes == ["a_cat", "b_dog"] and len(labels) == 10


def test_study_data_split(folder):
    data = folder_study_data(folder, seed=0)
    assert data.dataset == "folder" and data.task == "classification" and data.num_classes == 2
    assert (len(data.autoencoder), len(data.predictor), len(data.test)) == (5, 4, 1)
    parts = [p.indices for p in (data.autoencoder, data.predictor, data.test)]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(10))
    # Stratified: 4 cats -> 2/2/0 or 2/1/1, 6 dogs -> 3/2/1 or 3/3/0 (to within one image).
    assert data.autoencoder.selected_targets().tolist().count(0) == 2
    assert data.autoencoder.num_classes == 2
    again = load_study_data("folder", folder, seed=0)
    np.testing.assert_array_equal(again.test.indices, data.test.indices)


def test_stratified_parts_proportions():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    parts = stratified_parts(labels, seed=5)
    assert [len(p) for p in parts] == [100, 80, 20]
    for c, n in enumerate([100, 50, 30, 20]):
        counts = [int((labels[p] == c).sum()) for p in parts]
        assert all(abs(k - f * n) <= 1 for k, f in zip(counts, (0.5, 0.4, 0.1))), counts
    other = stratified_parts(labels, seed=6)
    assert not np.array_equal(parts[2], other[2])
    np.testing.assert_array_equal(stratified_parts(labels, seed=5)[2], parts[2])


def test_too_few_images(tmp_path):
    for i in range(3):
        save(tmp_path / "c" / f"{i}.png", solid((i, i, i)))
    with pytest.raises(DataError, match="too few"):
        folder_study_data(tmp_path)


def test_empty_root(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        load_image_folder(tmp_path)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_image_folder(tmp_path / "nope")


def test_empty_class(folder):
    (folder / "c_empty").mkdir()
    with pytest.raises(DataError, match="c_empty hold no images"):
        load_image_folder(folder)


def test_unreadable_image_named(folder):
    (folder / "b_dog" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"broken\.jpg: cannot be read as an image"):
        load_image_folder(folder)
    assert not [p for p in os.listdir(folder) if p.startswith(".")]


@pytest.mark.parametrize("size", [32, 70])
def test_bad_image_size(folder, size):
    with pytest.raises(DataError, match="64 \\+ 16n"):
        folder_study_data(folder, image_size=size)


def test_study_data_at_another_size(folder):
    data = load_study_data("folder", folder, seed=0, image_size=80)
    assert data.autoencoder.image_size == 80
    assert data.autoencoder.materialize().shape[1:] == (80, 80, 3)
    # A solid-colour image stays that colour at any size.
    first_dog = data.autoencoder.selected_targets().tolist().index(1)
    img = data.autoencoder.materialize()[first_dog]
    assert (img == img[0, 0]).all() and img[0, 0, 0] == 200


def test_each_image_file_is_read_once_whatever_links_the_folder_holds(tmp_path):
    """A folder linked to itself, a link to another class's image, a class that is a link to
    another class and a link out of the tree add nothing: the same image in two places would
    land in two classes or in two parts of the study (a leak between the splits)."""
    from percae.data.folder import list_images

    root = tmp_path / "images"
    for name, count in (("a", 3), ("b", 2)):
        for i in range(count):
            save(root / name / f"{i}.png", solid((40 * i, 0, 0)))
    outside = tmp_path / "outside.png"
    save(outside, solid((0, 0, 200)))
    os.symlink(".", root / "a" / "again")  # a loop
    os.symlink(root / "a" / "0.png", root / "b" / "copy.png")  # one image in two classes
    os.symlink(root / "a", root / "c")  # a class that is another class
    os.symlink(outside, root / "a" / "outside.png")  # out of the tree
    classes, samples = list_images(root)
    assert classes == ["a", "b"]
    assert [(os.path.relpath(p, root), t) for p, t in samples] == [
        ("a/0.png", 0),
        ("a/1.png", 0),
        ("a/2.png", 0),
        ("b/0.png", 1),
        ("b/1.png", 1),
    ]
    images, labels, _ = load_image_folder(root)
    assert len(images) == 5 and labels.tolist() == [0, 0, 0, 1, 1]


def test_an_image_name_that_is_not_a_regular_file_is_refused_not_waited_on(tmp_path):
    root = tmp_path / "images"
    save(root / "a" / "0.png", solid((10, 0, 0)))
    save(root / "b" / "0.png", solid((0, 10, 0)))
    os.mkfifo(root / "b" / "pipe.png")
    with pytest.raises(DataError, match="pipe.png is not a regular file"):
        load_image_folder(root)


def test_a_16_bit_grayscale_image_keeps_its_range(tmp_path):
    root = tmp_path / "images"
    save(root / "a" / "0.png", solid((10, 0, 0)))
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    (root / "b").mkdir()
    Image.fromarray(ramp).save(root / "b" / "deep.png")
    with Image.open(root / "b" / "deep.png") as img:
        assert img.mode.startswith("I")  # a 16-bit file, as PIL reads it
    images, labels, _ = load_image_folder(root)
    gray = images[labels == 1][0].astype(int)
    np.testing.assert_allclose(gray[:, :, 0], (ramp >> 8).astype(int), atol=2)
    assert (gray[..., 0] == gray[..., 2]).all() and gray.mean() == pytest.approx(127.5, abs=2)


def test_classes_too_small_to_be_predicted_are_refused_with_their_count(tmp_path):
    root = tmp_path / "images"
    for i in range(40):
        save(root / f"class{i:02d}" / "0.png", solid((i, 0, 0)))
    with pytest.raises(DataError, match=r"classes \(class.*as few as 1\).*at least 5 images"):
        folder_study_data(root)
    for i in range(40):
        for j in range(1, 5):
            save(root / f"class{i:02d}" / f"{j}.png", solid((i, j, 0)))
    data = folder_study_data(root)
    assert set(data.predictor.selected_targets().tolist()) == set(range(40))


def test_hidden_files_and_folders_are_skipped_at_every_depth(folder):
    save(folder / "a_cat" / ".ipynb_checkpoints" / "0-checkpoint.png", solid((0, 0, 0)))
    save(folder / "b_dog" / "sub" / ".git" / "x.png", solid((0, 0, 0)))
    save(folder / "b_dog" / ".hidden.png", solid((0, 0, 0)))
    save(folder / "b_dog" / "sub" / "kept.png", solid((7, 7, 7)))
    _, labels, _ = load_image_folder(folder)
    assert labels.tolist() == [0] * 4 + [1] * 7  # the one visible new image alone


def test_an_image_whose_data_stops_early_is_refused_naming_it(folder):
    short_png(folder / "a_cat" / "short.png")  # half the image data, in a valid chunk
    from PIL import ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = True  # as a library might set it: percae reads whole anyway
    try:
        with pytest.raises(DataError, match="short.png: cannot be read as an image .*truncated"):
            load_image_folder(folder)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_an_image_beyond_the_pixel_limit_is_refused_before_it_is_decoded(folder, monkeypatch):
    from percae.data import folder as folder_module

    monkeypatch.setattr(folder_module, "MAX_PIXELS", 64 * 63)
    with pytest.raises(DataError, match=r"64 x 64 px, more than the 0 million pixels"):
        load_image_folder(folder)


def test_the_exif_orientation_is_applied(tmp_path):
    root = tmp_path / "imgs"
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :40] = (255, 0, 0)  # left half red as stored
    (root / "only").mkdir(parents=True)
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    pil.save(root / "only" / "x.jpg", exif=exif, quality=100)
    images, _, _ = load_image_folder(root)
    # Displayed upright the image is 40 wide and 80 tall, red on top.
    assert images[0, 5, 32, 0] > 200 and images[0, 60, 32, 0] < 60


def test_the_cache_is_keyed_on_content_not_on_size_and_modification_time(folder):
    path = folder / "a_cat" / "1.bmp"  # uncompressed: other pixels, the same size of file
    (folder / "a_cat" / "1.png").unlink()
    save(path, solid((10, 100, 200)))
    load_image_folder(folder)
    stat = path.stat()
    save(path, solid((250, 100, 200)))
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p, rsync -a, tar x do
    images, _, _ = load_image_folder(folder)
    np.testing.assert_array_equal(images[1], solid((250, 100, 200), (64, 64)))


def test_a_file_name_that_is_not_utf8_loads(tmp_path):
    root = tmp_path / "imgs"
    save(root / "only" / "a.png", solid((1, 2, 3)))
    os.rename(root / "only" / "a.png", os.fsencode(root / "only") + b"/\xff\xfe.png")
    save(root / "other" / "b.png", solid((3, 2, 1)))
    images, labels, classes = load_image_folder(root)
    assert classes == ["only", "other"] and len(images) == 2
