"""The reliability probe's cases replayed, with a variation of each class of our own: each must
end as a clean refusal (exit 1, one line, no traceback, the folders as they were) or as a
correct result (checked). Prints a line per case; exits 1 if any is neither.

    python tests/replay_reliability.py [--keep DIR]

tests/test_reliability.py runs it with the suite.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def percae(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "percae", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            out[os.fsdecode(p.relative_to(root))] = p.read_bytes() if p.is_file() else None
    return out


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        g = np.random.default_rng(0)
        self.y = g.normal(size=(120, 2)).astype(np.float32)
        self.z = np.concatenate([self.y, g.normal(size=(120, 4))], 1).astype(np.float32)
        self.g = np.repeat(np.arange(12), 10)
        for name, array in (("z", self.z), ("y", self.y), ("g", self.g)):
            np.save(root / f"{name}.npy", array)
        self.collection = root / "collection"
        r = percae("data", "lunarlander", "--out", self.collection, "--rollouts", "6", "--steps",
                   "30", "--workers", "1")  # fmt: skip
        assert r.returncode == 0, r.stderr
        self.run = root / "run"
        r = percae("train", "--data", self.collection, "--out", self.run, "--z", "4", "--epochs",
                   "1", "--batch-size", "16", "--device", "cpu")  # fmt: skip
        assert r.returncode == 0, r.stderr

    def array(self, name: str, array) -> Path:
        path = self.root / "cases" / f"{name}.npy"
        path.parent.mkdir(exist_ok=True)
        np.save(path, array, allow_pickle=True)
        return path

    def probe(self, out, *extra, z=None, y=None, g="default"):
        args = ["probe", "--embeddings", z or self.root / "z.npy", "--targets",
                y or self.root / "y.npy", "--predictor-epochs", "3", "--device", "cpu",
                "--no-progress", "--out", out]  # fmt: skip
        if g == "default":
            args += ["--groups", self.root / "g.npy"]
        elif g is not None:
            args += ["--groups", g]
        return percae(*args, *extra)


def refused(result, *fragments) -> str | None:
    lines = result.stderr.strip().splitlines()
    if result.returncode != 1:
        return f"exit {result.returncode}, not 1: {result.stderr[-300:]}"
    if len(lines) != 1 or "Traceback" in result.stderr:
        return f"{len(lines)} lines: {result.stderr[-400:]}"
    missing = [f for f in fragments if f not in lines[0]]
    return f"the line lacks {missing}: {lines[0]}" if missing else None


def image_folder(root: Path, classes=("a", "b", "c"), per_class=8) -> Path:
    from PIL import Image

    g = np.random.default_rng(1)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = g.integers(0, 60, (64, 64, 3), dtype=np.uint8)
            img[10:30, 10:30] = (255 * (c == 0), 255 * (c == 1), 255 * (c == 2))
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def short_png(path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    data = buffer.getvalue()
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start : start + 4])[0]
    short = data[start + 8 : start + 8 + length // 2]
    chunk = struct.pack(">I", len(short)) + b"IDAT" + short
    chunk += struct.pack(">I", zlib.crc32(b"IDAT" + short) & 0xFFFFFFFF)
    path.write_bytes(data[:start] + chunk + data[start + 12 + length :])


def cases(w: Workspace):
    """(class, name, function returning None for a clean outcome or what went wrong)."""
    out = w.root / "out"

    def clean(result, *fragments, folder=None, before=None):
        problem = refused(result, *fragments)
        if problem is None and folder is not None and snapshot(folder) != before:
            problem = f"{folder} changed"
        return problem

    def fresh():
        shutil.rmtree(out, ignore_errors=True)

    # --- silently wrong, now refused or right
    yield (
        "silent",
        "probe --seeds 0,0",
        lambda: clean(w.probe(out, "--seeds", "0,0"), "names a seed twice"),
    )
    yield (
        "silent",
        "probe --seeds 0,1,0",
        lambda: clean(w.probe(out, "--seeds", "0,1,0"), "names a seed twice"),
    )
    yield (
        "silent",
        "probe --seeds 1,1 (ours)",
        lambda: clean(w.probe(out, "--seeds", "1,1"), "twice"),
    )
    yield (
        "silent",
        "reproduce --z 8,8",
        lambda: clean(
            percae("reproduce", "lunarlander", "--root", w.collection, "--z", "8,8", "--out", out),
            "--z names a latent size twice",
        ),
    )
    yield (
        "silent",
        "reproduce --z 8,16,8 (ours)",
        lambda: clean(
            percae(
                "reproduce", "lunarlander", "--root", w.collection, "--z", "8,16,8", "--out", out
            ),
            "twice",
        ),
    )

    def duplicate_key():
        path = w.root / "cases" / "dup.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text('{"dataset": "lunarlander", "z_sizes": [8], "z_sizes": [16]}')
        return clean(
            percae("reproduce", "--config", path, "--out", out), "gives the key z_sizes twice"
        )

    yield "silent", "duplicate JSON key in --config", duplicate_key

    def duplicate_nested_key():
        path = w.root / "cases" / "dup2.json"
        path.write_text('{"dataset": "lunarlander", "predictor": {"epochs": 2, "epochs": 3}}')
        return clean(
            percae("reproduce", "--config", path, "--out", out), "gives the key epochs twice"
        )

    yield "silent", "duplicate nested key (ours)", duplicate_nested_key

    def hidden_at_depth():
        from percae.data.folder import load_image_folder

        folder = image_folder(w.root / "cases" / "hidden")
        image_folder(folder / "a" / ".ipynb_checkpoints", classes=("x",), per_class=3)
        (folder / "b" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # ours
        _, labels, _ = load_image_folder(folder)
        return None if len(labels) == 24 else f"{len(labels)} images read, not 24"

    yield "silent", "hidden folder inside a class (and .DS_Store)", hidden_at_depth

    def stale_cache():
        from PIL import Image

        from percae.data.folder import load_image_folder

        folder = image_folder(w.root / "cases" / "stale")
        path = folder / "a" / "0.bmp"
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
        load_image_folder(folder)
        st = path.stat()
        Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(path)  # same size (BMP)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        images, _, _ = load_image_folder(folder)
        return None if int(images[0].mean()) == 200 else "read from the stale cache"

    yield "silent", "file rewritten, same size, mtime restored", stale_cache

    def concurrent(command):
        from percae.files import exclusive_use

        fresh()
        out.mkdir()
        with exclusive_use(out):
            result = command()
        problem = clean(result, "in use by another percae run", folder=out, before={})
        shutil.rmtree(out)
        return problem

    yield (
        "silent",
        "two train on one --out",
        lambda: concurrent(
            lambda: percae(
                "train", "--data", w.collection, "--z", "4", "--epochs", "1", "--out", out
            )
        ),
    )
    yield "silent", "two probe on one --out", lambda: concurrent(lambda: w.probe(out))
    yield (
        "silent",
        "two encode into one folder (ours)",
        lambda: concurrent(
            lambda: percae(
                "encode",
                "--run",
                w.run,
                "--data",
                w.collection,
                "--part",
                "test",
                "--out",
                out / "z.npy",
            )
        ),
    )

    def dtype_edit():
        from safetensors.torch import load_file, save_file
        import torch

        run = w.root / "cases" / "bad-dtype"
        shutil.copytree(w.run, run)
        state = load_file(run / "model.safetensors")
        state["mu.weight"] = state["mu.weight"].view(torch.int32)
        save_file(state, run / "model.safetensors")
        before = snapshot(run)
        a = clean(
            percae(
                "encode", "--run", run, "--data", w.collection, "--out", w.root / "cases" / "z.npy"
            ),
            "mu.weight is torch.int32, not torch.float32",
            folder=run,
            before=before,
        )
        b = clean(percae("export", run, "--out", w.root / "cases" / "exported"), "torch.int32")
        return a or b

    yield "silent", "safetensors dtype edited (encode, export)", dtype_edit
    yield (
        "silent",
        "probe --test-targets alone",
        lambda: clean(
            w.probe(out, "--test-targets", w.root / "y.npy"),
            "--test-targets needs --test-embeddings",
        ),
    )

    def truncated_png():
        folder = image_folder(w.root / "cases" / "short")
        short_png(folder / "b" / "short.png")
        return clean(
            percae("reproduce", "folder", "--preset", "quick", "--root", folder, "--out", out),
            "short.png: cannot be read as an image",
            folder=folder,
            before=snapshot(folder),
        )

    yield "silent", "PNG whose data stops early", truncated_png

    def text_as_png():  # ours
        folder = image_folder(w.root / "cases" / "text")
        (folder / "c" / "notes.png").write_text("not an image")
        return clean(
            percae("reproduce", "folder", "--preset", "quick", "--root", folder, "--out", out),
            "notes.png",
        )

    yield "silent", "a text file named .png (ours)", text_as_png

    def huge_png():
        from PIL import Image

        folder = image_folder(w.root / "cases" / "huge")
        Image.new("L", (9000, 9000)).save(folder / "a" / "huge.png")
        return clean(
            percae("reproduce", "folder", "--preset", "quick", "--root", folder, "--out", out),
            "9000 x 9000 px, more than the 64 million pixels",
        )

    yield "silent", "a 9000 x 9000 PNG", huge_png
    yield (
        "silent",
        "complex embeddings",
        lambda: clean(w.probe(out, z=w.array("complex", w.z + 1j)), "holds complex numbers"),
    )
    yield (
        "silent",
        "complex targets",
        lambda: clean(w.probe(out, y=w.array("complex_y", w.y + 1j)), "holds complex numbers"),
    )
    yield (
        "silent",
        "nanosecond timestamps as targets",
        lambda: clean(
            w.probe(
                out, y=w.array("ns", (1_700_000_000_000_000_000 + np.arange(120)).astype(np.int64))
            ),
            "beyond the 16777216 float32 holds exactly",
        ),
    )
    yield (
        "silent",
        "uint64 ids as targets (ours)",
        lambda: clean(
            w.probe(out, y=w.array("u64", np.arange(120, dtype=np.uint64) * 2**40)),
            "float32 holds exactly",
        ),
    )

    def exif():
        from PIL import Image

        from percae.data.folder import load_image_folder

        folder = w.root / "cases" / "exif" / "only"
        folder.mkdir(parents=True)
        img = np.zeros((40, 80, 3), np.uint8)
        img[:, :40] = 255
        pil = Image.fromarray(img)
        exif = pil.getexif()
        exif[0x0112] = 6
        pil.save(folder / "x.jpg", exif=exif, quality=100)
        images, _, _ = load_image_folder(folder.parent)
        return None if images[0, 5, 32, 0] > 200 and images[0, 60, 32, 0] < 60 else "EXIF ignored"

    yield "silent", "EXIF orientation", exif

    # --- lost runs and leftovers
    def interrupted_probe():
        fresh()
        first = w.probe(out, "--seeds", "2")
        whole = json.loads((out / "probe.json").read_text())
        (out / "probe.json").unlink()
        shutil.rmtree(out / "runs" / "z_seed1")
        again = w.probe(out, "--seeds", "2")
        if first.returncode or again.returncode:
            return again.stderr[-300:]
        return None if json.loads((out / "probe.json").read_text()) == whole else "other result"

    yield "lost", "an interrupted probe resumes with the same command", interrupted_probe

    def killed_export():
        partial = w.root / "cases" / ".shared.partial.abc"
        partial.mkdir(parents=True)
        (partial / "generating.pid").write_text(f"{socket.gethostname()} 999999999")
        (partial / "model.safetensors.tmp").write_bytes(b"x" * 4_000_000)
        r = percae("export", w.run, "--out", w.root / "cases" / "shared")
        if r.returncode:
            return r.stderr[-300:]
        return None if not partial.exists() else "the killed export's folder is left"

    yield "lost", "a killed export's partial folder", killed_export

    def redo_probe():
        fresh()
        w.probe(out, "--seeds", "2")
        other = w.array("other", w.z * 2)
        r = w.probe(out, "--seeds", "2", "--replace", z=other)
        if r.returncode:
            return r.stderr[-300:]
        runs = sorted(os.listdir(out / "runs"))
        return None if runs == ["other_seed0", "other_seed1"] else f"runs left: {runs}"

    yield "lost", "a redone probe keeps nothing of the old", redo_probe
    yield (
        "lost",
        "a finished probe is not silently replaced (ours)",
        lambda: clean(
            w.probe(out, "--seeds", "2", z=w.root / "cases" / "other.npy"), "holds a finished probe"
        ),
    )

    # --- tracebacks, now one line
    yield (
        "traceback",
        "targets near 1e30",
        lambda: (
            fresh(),
            clean(w.probe(out, y=w.array("huge_y", w.y * 1e30)), "float32 squares overflow"),
        )[1],
    )
    yield (
        "traceback",
        "empty (0, d) arrays",
        lambda: clean(
            w.probe(out, z=w.array("empty_z", w.z[:0]), y=w.array("empty_y", w.y[:0]), g=None),
            "is empty",
        ),
    )
    yield (
        "traceback",
        "(N, 0) targets",
        lambda: clean(w.probe(out, y=w.array("n0y", w.y[:, :0])), "is empty"),
    )
    yield (
        "traceback",
        "(N, 0) embeddings",
        lambda: clean(w.probe(out, z=w.array("n0z", w.z[:, :0])), "is empty"),
    )
    yield (
        "traceback",
        "test targets of another width",
        lambda: clean(
            w.probe(
                out,
                "--test-embeddings",
                w.root / "z.npy",
                "--test-targets",
                w.array("wide", np.zeros((120, 3))),
            ),
            "--test-targets has 3 value(s) per row",
        ),
    )
    yield (
        "traceback",
        "--split-seed -1",
        lambda: clean(w.probe(out, "--split-seed", "-1"), "--split-seed"),
    )

    yield (
        "traceback",
        "test embeddings of another width (ours)",
        lambda: clean(
            w.probe(
                out,
                "--test-embeddings",
                w.array("z5", w.z[:, :5]),
                "--test-targets",
                w.root / "y.npy",
            ),
            "--test-embeddings",
            "5 dimensions",
        ),
    )

    def non_utf8_name():
        from percae.data.folder import load_image_folder

        folder = image_folder(w.root / "cases" / "utf8")
        os.rename(folder / "a" / "0.png", os.fsencode(folder / "a") + b"/\xff\xfe.png")
        images, _, _ = load_image_folder(folder)
        return None if len(images) == 24 else f"{len(images)} images"

    yield "traceback", "a file name that is not UTF-8", non_utf8_name

    # --- misleading or long refusals
    yield (
        "misleading",
        "2 groups",
        lambda: clean(
            w.probe(out, g=w.array("two", np.repeat([0, 1], 60))), "in 2 group(s)", "at least 3"
        ),
    )
    yield (
        "misleading",
        "NaN groups",
        lambda: clean(
            w.probe(out, g=w.array("nan_g", np.repeat([0.0, np.nan], 60))),
            "NaN or infinite group ids",
        ),
    )
    yield (
        "misleading",
        "an .npz",
        lambda: (
            np.savez(w.root / "cases" / "z.npz", a=w.z),
            clean(w.probe(out, z=w.root / "cases" / "z.npz"), ".npz archive"),
        )[1],
    )

    def truncated_model():
        run = w.root / "cases" / "truncated"
        shutil.copytree(w.run, run)
        data = (run / "model.safetensors").read_bytes()
        (run / "model.safetensors").write_bytes(data[: len(data) // 3])
        return clean(
            percae(
                "encode", "--run", run, "--data", w.collection, "--out", w.root / "cases" / "t.npy"
            ),
            "model.safetensors cannot be read",
        )

    yield "misleading", "a corrupted model file (not the learning rate)", truncated_model

    def resume_refused_first():
        run = w.root / "cases" / "resume"
        r = percae("train", "--data", w.collection, "--out", run, "--z", "4", "--epochs", "3",
                   "--batch-size", "16", "--device", "cpu")  # fmt: skip
        (run / "train_result.json").unlink()  # as if interrupted after its last epoch
        import torch

        ck = {"train_config": {"lr": 0.5}, "model": {}}
        torch.save(ck, run / "checkpoint.pt")
        r = percae("train", "--data", w.collection, "--out", run, "--z", "4", "--epochs", "3",
                   "--batch-size", "16", "--device", "cpu")  # fmt: skip
        return refused(r, "holds an interrupted run with other settings")

    yield "misleading", "a resume refusal is the one line", resume_refused_first
    yield (
        "misleading",
        "groups of another length (ours)",
        lambda: clean(w.probe(out, g=w.array("g100", w.g[:100])), "--groups", "(100,)"),
    )
    yield (
        "misleading",
        "an infinite target named by its place, plainly (ours)",
        lambda: clean(
            w.probe(
                out, y=w.array("inf_y", np.where(np.arange(240).reshape(120, 2) == 7, np.inf, w.y))
            ),
            "NaN or infinite",
            "(first at (3, 1))",
        ),
    )

    def memory():
        big = w.array("big", np.zeros((40, 300_000), np.float32))
        return clean(w.probe(out, z=big, y=w.array("y40", w.y[:40]), g=None), "GB, more than the")

    yield "misleading", "a grid that cannot fit in memory", memory


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", default=None, help="work in this folder and keep it")
    p.add_argument(
        "--only",
        default=None,
        help="only the cases whose name holds this text (a few read what earlier cases write)",
    )
    args = p.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="percae-replay-"))
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PERCAE_CACHE", str(root / "cache"))
    try:
        w = Workspace(root)
        bad = 0
        for kind, name, case in cases(w):
            if args.only and args.only not in name:
                continue
            try:
                problem = case()
            except Exception as e:  # noqa: BLE001 - a case that raises is a failure, shown
                problem = f"{type(e).__name__}: {e}"
            bad += problem is not None
            print(
                f"{'ok  ' if problem is None else 'FAIL'} [{kind}] {name}"
                + (f": {problem}" if problem else ""),
                flush=True,
            )
        print(
            f"\n{bad} of the cases failed"
            if bad
            else "\nevery case: a clean refusal or a correct result"
        )
        return 1 if bad else 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
