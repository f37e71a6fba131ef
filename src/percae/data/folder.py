"""Any folder of labelled images (ROOT/<class>/*.png ...) as the three parts of Table I.

Classes are the sub-folders of ROOT sorted by name, as in torchvision's ImageFolder; hidden
files and folders (.ipynb_checkpoints, .git, ...) are skipped at every depth. Images are
decoded once, whole (a truncated file is refused, naming it), turned as their EXIF orientation
says (unlike torchvision's ImageFolder, which ignores it), made RGB and resized to a square side
with PIL's bilinear filter, and cached in percae's cache folder (`cache_folder`), never in ROOT,
so that later loads are memory maps. The cache is keyed on each file's content (its hash,
computed again only for a file whose size, times or inode changed), never on its modification
time alone. A folder has no predefined parts, so they are drawn: 50% autoencoder, 40%
predictor, 10% test, stratified by class and seeded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..files import atomic_write_json, remove_stale_temporary_files, waiting_for
from . import DataError, ImageSet, StudyData, check_image_size

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FRACTIONS = (0.5, 0.4, 0.1)  # autoencoder, predictor, test
# 2: keyed on content, EXIF orientation applied.
CACHE_VERSION = 2
# Larger images are refused rather than decoded: 8000 x 8000 (PIL warns of "decompression
# bombs" only beyond 89 million, and a 10 000 x 10 000 one took 930 MB to decode).
MAX_PIXELS = 64_000_000


def list_images(root: str | os.PathLike) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, [(path, class index)]) with ImageFolder's conventions and order, but each
    image file once: a linked folder is not entered (a link to itself would list its images
    again and again, and a link to another class would put one image in two classes and in two
    parts of the study), and a linked file counts only if it leads to a file of this tree not
    listed already. Hidden sub-folders (.ipynb_checkpoints, .git, ...) are not classes."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected ROOT/<class name>/<images>")
    classes = sorted(
        e.name
        for e in os.scandir(root)
        if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
    )
    if not classes:
        raise DataError(
            f"{root} has no class sub-folders; expected ROOT/<class name>/<images> "
            f"({', '.join(EXTENSIONS)}; linked folders are not followed)"
        )
    inside, seen, samples = os.path.realpath(root) + os.sep, set(), []
    for index, name in enumerate(classes):
        walk = os.walk(root / name, followlinks=False)
        for folder, subfolders, files in sorted(walk):
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]  # not entered
            if any(part.startswith(".") for part in Path(folder).relative_to(root).parts):
                continue
            for file in sorted(files):
                path = os.path.join(folder, file)
                if file.startswith(".") or not file.lower().endswith(EXTENSIONS):
                    continue
                real = os.path.realpath(path)
                if not real.startswith(inside) or real in seen:
                    continue
                if not os.path.isfile(real):  # a FIFO would block the read forever
                    raise DataError(f"{path} is not a regular file; remove it from {root}")
                seen.add(real)
                samples.append((path, index))
    counts = np.bincount([t for _, t in samples], minlength=len(classes))
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(
            f"{root}: class folder(s) {', '.join(empty)} hold no images ({', '.join(EXTENSIONS)}); "
            f"add images or remove the folder(s)"
        )
    return classes, samples


def _signature(path: str) -> list[int]:
    """What changes whenever a file is written, whatever its modification time says: cp -p,
    rsync -a and tar x restore the time, not the inode's change time."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _content_hashes(root: Path, samples, known: dict) -> dict[str, list]:
    """Each image's relative path -> [signature..., content hash]; the hash of a file whose
    signature is the one `known` recorded is taken from there, not computed again."""
    out = {}
    for path, _ in samples:
        key = os.fsencode(os.path.relpath(path, root)).hex()
        signature = _signature(path)
        if known.get(key, [])[:-1] == signature:
            out[key] = known[key]
            continue
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[key] = [*signature, digest.hexdigest()]
    return out


def _fingerprint(classes: list[str], samples, hashes: dict, image_size: int) -> str:
    """Changes whenever an image is added, removed, relabelled or its content changes."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, image_size, classes]).encode())
    for (_, target), (key, entry) in zip(samples, hashes.items()):
        h.update(f"{key}\0{target}\0{entry[-1]}\n".encode())
    return h.hexdigest()


def _decode(path: str, image_size: int) -> np.ndarray:
    import warnings

    from PIL import Image, ImageFile, ImageOps

    shown = os.fsdecode(path).encode("utf-8", "replace").decode()
    truncated, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise DataError(
                        f"{shown}: {width} x {height} px, more than the {MAX_PIXELS // 10**6} "
                        "million pixels percae decodes; resize it (or remove it)"
                    )
                img.load()  # whole, or refused: a truncated file is not filled with black
                img = ImageOps.exif_transpose(img)
                if img.mode.startswith("I"):
                    # 16-bit grayscale: PIL's convert would clip every value above 255 to white.
                    depth = np.asarray(img, dtype=np.uint32) >> 8
                    img = Image.fromarray(np.minimum(depth, 255).astype(np.uint8), "L")
                img = img.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:  # PIL raises OSError, ValueError, DecompressionBombError, ...
        reason = " ".join(str(e).split())[:200]
        raise DataError(
            f"{shown}: cannot be read as an image ({type(e).__name__}: {reason}); fix or remove it"
        ) from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated


def cache_folder() -> Path:
    """Where percae keeps what it can always rebuild (decoded image folders): $PERCAE_CACHE,
    else $XDG_CACHE_HOME/percae, else ~/.cache/percae. Deleting it costs only time."""
    if os.environ.get("PERCAE_CACHE"):
        return Path(os.environ["PERCAE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "percae"


def _cache_paths(root: Path, image_size: int) -> tuple[Path, Path, Path]:
    # One folder per image folder, by its real path: a user's folder is theirs, never written.
    real = os.path.realpath(root)
    key = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    stem = cache_folder() / "image-folders" / f"{Path(real).name or 'root'}-{key}" / str(image_size)
    return Path(f"{stem}.npy"), Path(f"{stem}.labels.npy"), Path(f"{stem}.json")


def _read_cache(root: Path, image_size: int, fingerprint: str, n: int):
    images_path, labels_path, meta_path = _cache_paths(root, image_size)
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") != fingerprint:
            return None
        images = np.load(images_path, mmap_mode="r")
        labels = np.load(labels_path)
    except (OSError, ValueError):
        return None
    if (
        images.shape != (n, image_size, image_size, 3)
        or images.dtype != np.uint8
        or labels.shape != (n,)
    ):
        return None
    return images, labels.astype(np.int64)


def _temp(folder: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _write_cache(
    root: Path, image_size: int, fingerprint: str, samples, classes, hashes: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Decode every image; straight into the cache file where the cache folder is writable."""
    images_path, labels_path, meta_path = _cache_paths(root, image_size)
    n = len(samples)
    shape = (n, image_size, image_size, 3)
    labels = np.array([t for _, t in samples], dtype=np.int64)
    tmp_images = None
    try:
        tmp_images = _temp(images_path.parent, images_path.name)
        images = np.lib.format.open_memmap(tmp_images, mode="w+", dtype=np.uint8, shape=shape)
    except OSError:
        # An unwritable cache folder: the images still load, only without a cache.
        if tmp_images is not None:
            tmp_images.unlink(missing_ok=True)
        tmp_images, images = None, np.empty(shape, dtype=np.uint8)
    tmp_labels = None
    try:
        for i, (path, _) in enumerate(samples):
            images[i] = _decode(path, image_size)
        if tmp_images is None:
            return images, labels
        images.flush()
        del images
        tmp_labels = _temp(labels_path.parent, labels_path.name)
        with open(tmp_labels, "wb") as f:
            np.save(f, labels)
        os.replace(tmp_images, images_path)
        os.replace(tmp_labels, labels_path)
        # The metadata goes last: a cache without matching metadata is never trusted.
        atomic_write_json(
            meta_path,
            {
                "fingerprint": fingerprint,
                "folder": os.path.realpath(root),
                "images": n,
                "image_size": image_size,
                "classes": classes,
                "files": hashes,  # each file's signature and content hash, for the next load
            },
        )
    except BaseException:
        for tmp in (tmp_images, tmp_labels):
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        raise
    return np.load(images_path, mmap_mode="r"), labels


def load_image_folder(
    root: str | os.PathLike, image_size: int = 64
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, S, S, 3), labels int64 (N,), class names); a memmap once cached."""
    check_image_size(image_size)
    root = Path(root)
    classes, samples = list_images(root)
    try:
        known = json.loads(_cache_paths(root, image_size)[2].read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        known = {}
    hashes = _content_hashes(root, samples, known if isinstance(known, dict) else {})
    fingerprint = _fingerprint(classes, samples, hashes, image_size)
    cached = _read_cache(root, image_size, fingerprint, len(samples))
    if cached is None:
        # Held while decoding: a second process loading the same folder waits, then reads the
        # cache; the temporary files found once it is held are a killed writer's.
        cache = _cache_paths(root, image_size)[0].parent
        with waiting_for(cache) as held:
            if held:
                remove_stale_temporary_files(cache)
            # Another process may have written it while this one waited.
            cached = _read_cache(root, image_size, fingerprint, len(samples))
            if cached is None:
                cached = _write_cache(root, image_size, fingerprint, samples, classes, hashes)
    return cached[0], cached[1], classes


def stratified_parts(labels: np.ndarray, seed: int, fractions=FRACTIONS) -> list[np.ndarray]:
    """Positions of each part, sorted; every class is spread over the parts in `fractions`.

    Images are ranked within their class in a seeded random order and sorted by their
    relative rank, so cutting that order at the overall fractions gives each class its
    share (to within one image) while the part sizes stay exact, even for tiny classes.
    """
    n = len(labels)
    sizes = [int(np.floor(f * n + 0.5)) for f in fractions[1:]]
    sizes = [max(1, s) for s in sizes]
    sizes.insert(0, n - sum(sizes))
    if sizes[0] < 2:
        raise DataError(
            f"{n} images are too few to split into autoencoder/predictor/test parts; use at least 5"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    key = np.empty(n, dtype=np.float64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        key[members] = (np.arange(len(members)) + 0.5) / len(members)
    ranked = order[np.argsort(key[order], kind="stable")]
    cuts = np.cumsum(sizes)[:-1]
    return [np.sort(part) for part in np.split(ranked, cuts)]


def folder_study_data(
    root: str | os.PathLike, seed: int = 0, image_size: int | None = None
) -> StudyData:
    """Table I for an image folder: 50/40/10% autoencoder/predictor/test, stratified by class;
    images resized to `image_size` (64 px unless given)."""
    images, labels, classes = load_image_folder(root, image_size or 64)
    base = ImageSet(
        images, targets=labels, num_classes=len(classes), name=f"folder {Path(root).name}"
    )
    parts = stratified_parts(labels, seed)
    # A class with no image among the predictors' can never be predicted: with many classes of
    # one image each, the study would report 0% accuracy and say nothing of why.
    unseen = sorted(set(range(len(classes))) - set(labels[parts[1]].tolist()))
    if unseen:
        counts = np.bincount(labels, minlength=len(classes))
        names = ", ".join(classes[i] for i in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        raise DataError(
            f"{root}: {len(unseen)} of {len(classes)} classes ({names}) have too few images "
            f"(as few as {counts[unseen].min()}) to appear among the predictors' images; give "
            "each class at least 5 images, or merge the small classes"
        )
    autoencoder, predictor, test = (base.subset(p) for p in parts)
    return StudyData(
        dataset="folder",
        task="classification",
        autoencoder=autoencoder,
        predictor=predictor,
        test=test,
        num_classes=len(classes),
        notes=[
            f"{len(labels)} images in {len(classes)} classes ({', '.join(classes)}), "
            f"split 50/40/10% autoencoder/predictor/test by class with seed {seed}"
        ],
    )
