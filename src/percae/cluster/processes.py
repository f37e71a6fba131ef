"""The processes of a Ray a driver started, written down so that the next Ray study on the
machine ends them if that driver was killed (kill -9) before it could: Ray's agents outlive a
killed driver for minutes. Linux's /proc names each process by PID and start time."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path

from ..files import atomic_write_bytes


def ray_record(driver: int) -> Path:
    return Path(tempfile.gettempdir()) / f"percae-ray-{driver}.json"


def _start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot; Linux): with its PID, it names the
    process even after the PID is reused. None: no such process, or no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def record_this_ray() -> None:
    """Write down the processes of the Ray this driver has just started (all its descendants
    now), so that if the driver is killed (kill -9) before it stops them, the next Ray study
    on this machine ends them; Ray's agents outlive a killed driver for minutes."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(
                    int(entry)
                )
        except (OSError, ValueError, IndexError):
            continue
    started, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            started.append([child, _start_time(child)])
            todo.append(child)
    driver = [os.getpid(), _start_time(os.getpid())]
    atomic_write_bytes(
        ray_record(os.getpid()),
        lambda f: f.write(json.dumps({"driver": driver, "processes": started}).encode()),
    )


def end_abandoned_rays() -> None:
    """End the processes of the Rays that killed percae drivers on this machine started."""
    for record in Path(tempfile.gettempdir()).glob("percae-ray-*.json"):
        try:
            content = json.loads(record.read_text())
            driver, processes = content["driver"], content["processes"]
            if _start_time(driver[0]) == driver[1] and driver[1] is not None:
                continue  # its driver is alive: its Ray is in use
            for pid, start in processes:
                if start is not None and _start_time(pid) == start:
                    os.kill(pid, signal.SIGKILL)
            record.unlink(missing_ok=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # another user's record, or not one percae wrote
