"""Whether a GPU can be there at all, told without importing torch.

Importing torch takes seconds; ``lipsdf sample`` needs it only to look for a CUDA device (its
default device is CUDA when present). A PyTorch built for no GPU says so in its ``version.py``, which is
read here as text, so that on such a machine the command never imports torch.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Optional


def gpu_build() -> bool:
    """Whether the installed PyTorch is built for CUDA or ROCm (True where its files do not tell).

    Examples
    --------
    >>> isinstance(gpu_build(), bool)
    True
    """
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return True  # torch's own import will say what is wrong
    try:
        text = (Path(spec.origin).parent / "version.py").read_text()
    except OSError:
        return True
    builds = dict(re.findall(r"^(cuda|hip)\b[^=\n]*=\s*(.+?)\s*$", text, re.M))
    return set(builds) != {"cuda", "hip"} or any(value != "None" for value in builds.values())


def geometry_device(asked: Optional[str] = None) -> Optional[str]:
    """Where sampling computes exact distances and winding numbers: a CUDA device (lipsdf's own geometry), or
    None for libigl on the CPU. ``asked``: the device asked for (None: CUDA when present).

    Examples
    --------
    >>> geometry_device("cpu") is None
    True
    """
    if asked == "cpu" or (asked is None and not gpu_build()):
        return None
    from lipsdf.field import resolve_device  # imports torch

    device = resolve_device(asked)
    return str(device) if device.type == "cuda" else None
