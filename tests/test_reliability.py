"""The reliability probe's cases, replayed (tests/replay_reliability.py): every one a clean
refusal or a correct result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_every_case_of_the_reliability_probe_is_a_clean_refusal_or_a_correct_result(tmp_path):
    script = Path(__file__).with_name("replay_reliability.py")
    result = subprocess.run(
        [sys.executable, str(script), "--keep", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "every case: a clean refusal or a correct result" in result.stdout
