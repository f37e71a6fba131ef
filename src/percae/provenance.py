"""Where a result came from: the results' schema version, the versions of the software that
computed it, the device, and a fingerprint of the perceptual network's weights. Recorded in
every study (provenance.json, copied into summary.json) and every finished run
(train_result.json), so that a table read a year later can be traced."""

from __future__ import annotations

import hashlib
import platform
from importlib.metadata import PackageNotFoundError, version

# Version of the results folders' layout and files; `percae report` refuses newer ones.
# 2: study_config.json holds the study's training and predictor settings as parts ("train",
# "predictor"); version 1's flat file is still read (StudyConfig.from_dict).
SCHEMA_VERSION = 2
PACKAGES = ("percae", "torch", "torchvision", "numpy", "gymnasium", "scipy")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's version and each package's (torch's with its build: +cu130, +cpu)."""
    out = {"python": platform.python_version()}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    if "torch" in packages:
        import torch

        out["torch"] = torch.__version__  # with its build, which the metadata omits
    return out


def device_name(device) -> str:
    """The GPU's name, or the CPU's model."""
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"cpu: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"cpu: {platform.processor() or platform.machine()}"


def network_fingerprint(network) -> str:
    """sha256 of a network's weights and buffers, in name order: the same digest means the
    same network, whatever file or seed it came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def record(device) -> dict:
    """This process's part of a provenance record."""
    return {"schema": SCHEMA_VERSION, "versions": versions(), "device": device_name(device)}
