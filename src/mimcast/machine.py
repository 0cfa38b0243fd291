"""What machine a measurement ran on: CPU model, AMX or not, cores, torch build, GPU.

Every timing mimcast writes (bench tables, experiment reports) carries this description, so
numbers measured on different CPUs are never compared by accident.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def describe(device: str = "cpu") -> dict[str, Any]:
    """A JSON-able description of this machine and, for a CUDA device, its GPU."""
    import torch

    flags = cpu_flags()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    return {
        "cpu": cpu_model(),
        "amx": any(f.startswith("amx") for f in flags),
        "avx512_bf16": "avx512_bf16" in flags,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
    }


def one_line(m: dict[str, Any]) -> str:
    """`AMD EPYC (no AMX), 2 cores, torch 2.13.0+cpu` and the GPU when there is one."""
    amx = "AMX" if m.get("amx") else "no AMX"
    gpu = f", {m['gpu']}" if m.get("gpu") else ", no GPU"
    return f"{m['cpu']} ({amx}), {m['cores']} cores{gpu}, torch {m['torch']}"
