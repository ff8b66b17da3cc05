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
        device += ", native bfloat16" if bf16_is_fast("cpu") else ", no native bfloat16"
    return {"command": " ".join(["python -m benchmarks." + script, *sys.argv[1:]]), "commit": commit,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {device}",
            "date": time.strftime("%Y-%m-%d")}
