"""What every result file records about how it was made: the command, the commit, the machine, the date."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from lipsdf.training import bf16_is_fast

ROOT = Path(__file__).resolve().parents[1]


def provenance() -> dict:
    """The command line (as ``python -m benchmarks.NAME ...``), the commit of the tree it ran on (``+`` when
    the tree had uncommitted changes), the machine and the date."""
    script = Path(sys.argv[0]).stem
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "benchmarks"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += "+" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    if device == "CPU":  # whether --precision bf16 pays here decides how many epochs a budget buys
        device = f"{cpu_model()}, " + ("native bfloat16" if bf16_is_fast("cpu") else "no native bfloat16")
    return {"command": " ".join(["python -m benchmarks." + script, *sys.argv[1:]]), "commit": commit,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {device}",
            "date": time.strftime("%Y-%m-%d")}


def cpu_model() -> str:
    """The CPU's model name, and whether it has AMX tiles (bfloat16 products several times faster than
    AVX-512's): the same "2 cores" differ by that much from one machine to the next."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "CPU"
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    return (names[0] if names else "CPU") + (" with AMX" if " amx_bf16" in info else "")
