"""Whether two study folders hold the same results, timings aside: the check that a change of
code's layout changed no behaviour. Run a tiny study with each version and compare:

    percae data lunarlander --out tiny --rollouts 8 --steps 60 --seed 0
    percae reproduce lunarlander --root tiny --out before --z 8 --models AE,VAE,P.AE,P.VAE \
        --epochs 2 --predictor-epochs 20 --retrain-epochs 1 --seeds 2 --batch-size 16 \
        --perceptual-net alexnet-random --no-progress
    (change the code, run the same command with --out after)
    python scripts/compare_study_files.py before after

Every file must exist in both. Arrays, model and predictor files, and figures are compared byte
for byte; JSON files as values, without timings, throughputs and provenance (a study's settings
as StudyConfig reads them, so that a folder of an older results schema compares by meaning);
CSV files without their timing columns; tables.md without the lines that report speed. Exit 1
on any difference.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

# Keys and columns that measure time or name the machine, the versions or the commit.
TIMING = ("second", "images_per_s", "overhead", "provenance", "throughput")
SPEED_LINES = ("throughput", "overhead of the perceptual loss")


def timed(key: str) -> bool:
    return any(word in key.lower() for word in TIMING)


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not timed(k)}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def settings(values: dict) -> dict:
    from percae.study.config import StudyConfig

    return StudyConfig.from_dict(values).to_dict()


def comparable(path: Path):
    if path.name == "provenance.json":
        return None
    if path.suffix == ".json":
        values = json.loads(path.read_text())
        if path.name == "study_config.json":
            values = settings(values)
        elif path.name == "summary.json":
            values["config"] = settings(values["config"])
        return without_timings(values)
    if path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        return [{k: v for k, v in row.items() if not timed(k)} for row in rows]
    if path.suffix == ".md":
        return [
            line
            for line in path.read_text().splitlines()
            if not any(w in line.lower() for w in SPEED_LINES)
        ]
    return path.read_bytes()


def main() -> int:
    before, after = map(Path, sys.argv[1:3])
    names = {p.relative_to(before) for p in before.rglob("*") if p.is_file()}
    names_after = {p.relative_to(after) for p in after.rglob("*") if p.is_file()}
    differences = [f"only in {before}: {n}" for n in sorted(names - names_after)]
    differences += [f"only in {after}: {n}" for n in sorted(names_after - names)]
    for name in sorted(names & names_after):
        if comparable(before / name) != comparable(after / name):
            differences.append(f"differs: {name}")
    print("\n".join(differences) or f"same: {len(names)} files (timings aside)")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
