"""The README is the newcomer's page: one page, its Python example runs as written, and no
file of the project refers to issue numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_readme_is_one_page():
    assert len(README.splitlines()) <= 150


def test_no_file_refers_to_issue_numbers():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    pattern = re.compile(r"\b(issue|issues) #?\d+", re.IGNORECASE)
    found = [
        f"{name}: {m.group(0)}"
        for name in tracked
        if Path(ROOT / name).suffix in (".md", ".py", ".sh", ".toml", ".log", ".txt")
        for m in pattern.finditer((ROOT / name).read_text(errors="replace"))
    ]
    assert not found, found


@pytest.mark.slow
def test_the_readmes_python_example_runs_as_written(collection_path, tmp_path):
    (example,) = re.findall(r"## Python API\n\n```python\n(.*?)```", README, re.DOTALL)
    (tmp_path / "data").mkdir()
    os.symlink(collection_path, tmp_path / "data" / "ll")
    (tmp_path / "example.py").write_text(example)
    done = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'mean':" in done.stdout and "'per_seed':" in done.stdout
    assert (tmp_path / "runs" / "pae" / "model.safetensors").exists()
    assert (tmp_path / "results" / "probe" / "probe.json").exists()
