"""What ``lipsdf fit`` does by default: named recipes, each a small table with a time budget.

A recipe fixes everything but the number of epochs: the points and how they are drawn, the network, the
optimiser, the contour grid, the picture, the evaluation, and the whole fit's time budget. The fit
measures its training step on the machine and trains the epochs that fill the budget
(:mod:`lipsdf.pipeline.single`). Where a setting's reason is a measurement, its line points to the committed
result; the history of each default lives in ``benchmarks/results/``.

================================  =========  ==================================================
recipe                            budget     for
================================  =========  ==================================================
``mesh``                          3 min      signed fields of meshes (exact distances), CPU
``scan``                          3 min      signed fields of 3D point clouds (estimated distances), CPU
``outline``                       3 min      signed fields of 2D outlines, CPU
``field-3d`` / ``field-2d``       3 min      unsigned fields (CPU)
``*-quick``                       1 min      the same, as a preview
``gpu-3d`` / ``gpu-2d``           20 / 15 s  any field on a CUDA GPU (3D: Muon, 2D: Adam)
``paper``                         as above   the paper's SLL 20 x 128 with hKR at lr 5e-4
================================  =========  ==================================================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from lipsdf.training import bf16_is_fast

MINUTE = 60.0


@dataclass(frozen=True)
class Recipe:
    """The defaults of one kind of fit. ``training`` holds no epochs: ``budget`` (seconds, the whole fit)
    sets them, after ``finish_seconds`` are kept for the stages after training (contour, render, eval)."""

    name: str
    budget: float
    sampling: dict[str, Any]
    training: dict[str, Any]
    model: dict[str, Any]
    resolution: int
    image_size: int
    evaluation: dict[str, Any] = field(default_factory=dict)
    finish_seconds: float = 10.0

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **changes)


# Signed fits on exact distances put 3/4 of their points near the surface, a third of those within about
# 0.003 of it (unit box): the zero level is decided there (benchmarks/results/budget_levers.md).
SIGNED_SAMPLING = {"uniform_fraction": 0.25, "near_sigmas": (0.003, 0.01, 0.05)}
# Outlines draw theirs closer still: their detail is finer, relative to the box, than a mesh's.
OUTLINE_SAMPLING = {"uniform_fraction": 0.25, "near_sigmas": (0.002, 0.006, 0.03)}
# Outlines and quick signed fits step twice as far with a shorter memory of the gradients' scale; full
# mesh fits did better at lr 5e-3 and beta2 0.999 (benchmarks/results/budget_levers.md, optimiser rows).
FAST_OPTIMISER = {"lr": 1e-2, "adam_beta2": 0.95}
MESH_OPTIMISER = {"lr": 5e-3, "adam_beta2": 0.999}
# CPU fits (but 2D unsigned ones) step their weight matrices by Muon: at the same epochs it placed France's zero level 3x
# closer than Adam, and a 3-minute bunny fit with it matched the 10-minute Adam fit
# (benchmarks/results/convergence.md).
MUON = {"optimiser": "muon", "muon_lr": 0.02}
QUICK_EVALUATION = {"n_uniform": 5_000, "n_near": 5_000, "n_pairs": 20_000, "n_surface": 20_000}
SLL_20x64 = {"layers": 20, "width": 64}

# CPU recipes. finish_seconds: contour + render + eval took 11 s (3D), 5 s (2D) and 3 s (quick) in
# benchmarks/results/defaults.json.
_CPU = {
    # 3 minutes with Muon matched the 10 minutes with Adam on the bunny (benchmarks/results/convergence.md)
    "mesh": Recipe("mesh", 3 * MINUTE, {"n": 200_000, "n_test": 20_000, **SIGNED_SAMPLING},
                   {"batch_size": 2048, **MESH_OPTIMISER, **MUON}, SLL_20x64, 192, 512, finish_seconds=15),
    "mesh-quick": Recipe("mesh-quick", MINUTE, {"n": 40_000, "n_test": 5_000, **SIGNED_SAMPLING},
                         {"batch_size": 2048, **FAST_OPTIMISER, **MUON}, SLL_20x64, 96, 256, QUICK_EVALUATION, 5),
    # SLL 20 x 48 on 100k points: at an equal time, more steps place a 2D zero level better (budget_levers.md)
    "outline": Recipe("outline", 3 * MINUTE, {"n": 100_000, "n_test": 20_000, **OUTLINE_SAMPLING},
                      {"batch_size": 2048, **FAST_OPTIMISER, **MUON}, {"layers": 20, "width": 48}, 512, 0,
                      finish_seconds=6),
    "outline-quick": Recipe("outline-quick", MINUTE, {"n": 20_000, "n_test": 5_000, **OUTLINE_SAMPLING},
                            {"batch_size": 1024, **FAST_OPTIMISER, **MUON}, {"layers": 20, "width": 48}, 256, 0,
                            QUICK_EVALUATION, 4),
    # unsigned fields keep the sampling and batch they were measured with (accuracy_levers.md); in 3D, Muon's
    # 3 minutes beat Adam's 3 and 10 on suzanne (benchmarks/results/optimisers.md, defaults.md)
    "field-3d": Recipe("field-3d", 3 * MINUTE, {"n": 200_000, "n_test": 20_000},
                       {"batch_size": 4096, **MESH_OPTIMISER, **MUON}, SLL_20x64, 192, 512, finish_seconds=15),
    "field-3d-quick": Recipe("field-3d-quick", MINUTE, {"n": 40_000, "n_test": 5_000},
                             {"batch_size": 2048, **MESH_OPTIMISER, **MUON}, SLL_20x64, 96, 256, QUICK_EVALUATION, 5),
    # 2D unsigned fields: Muon not measured there, Adam kept
    "field-2d": Recipe("field-2d", 3 * MINUTE, {"n": 60_000, "n_test": 20_000},
                       {"batch_size": 2048, **MESH_OPTIMISER}, SLL_20x64, 512, 0, finish_seconds=6),
    "field-2d-quick": Recipe("field-2d-quick", MINUTE, {"n": 20_000, "n_test": 5_000},
                             {"batch_size": 1024, **MESH_OPTIMISER}, SLL_20x64, 256, 0, QUICK_EVALUATION, 4),
}
# GPU recipes: large batches keep the GPU busy, at a learning rate raised to match; TF32 products in
# training (queries evaluate in float32); rare checkpoints, since an epoch takes milliseconds. The budget is
# what 160 (3D) and 150 (2D) epochs took there (benchmarks/results/gpu.md). In 3D the matrices step by Muon:
# at those 160 epochs it placed the bunny 1.5x closer than Adam (the recipe trained on the CPU,
# benchmarks/results/gpu_recipe.md); not yet timed on a GPU. 2D keeps Adam (not measured there).
_GPU_TRAINING = {"checkpoint_every": 40, "matmul_precision": "tf32"}
_GPU = {
    3: Recipe("gpu-3d", 20.0, {"n": 400_000, "n_test": 20_000},
              {"batch_size": 32768, "lr": 1e-2, **_GPU_TRAINING, **MUON}, SLL_20x64, 192, 512, finish_seconds=4),
    2: Recipe("gpu-2d", 15.0, {"n": 200_000, "n_test": 20_000},
              {"batch_size": 16384, "lr": 7e-3, **_GPU_TRAINING}, SLL_20x64, 512, 0, finish_seconds=3),
}
# A scan trains as a mesh does, on distances estimated from its points (benchmarks/scans.py compares it with
# Screened Poisson).
_CPU["scan"] = _CPU["mesh"].replace(name="scan")
_CPU["scan-quick"] = _CPU["mesh-quick"].replace(name="scan-quick")
CPU_CHECKPOINT_EVERY = 5


def recipe_for(dim: int, quick: bool = False, device: Optional[str] = "cpu", recipe: str = "lipsdf",
               signed: bool = True, scan: bool = False) -> Recipe:
    """The recipe of a fit: by dimension, ``quick``, device, ``recipe`` (``lipsdf`` or ``paper``), whether
    it trains a signed field (on distances: exact ones, or a point cloud's estimated ones) and whether the
    shape is a point cloud (``scan``).

    On a CPU with native bfloat16 (:func:`~lipsdf.training.bf16_is_fast`), training runs its first 3/4 of
    steps with bfloat16 products, which makes a step cheaper, so the same budget buys more epochs.

    Examples
    --------
    >>> recipe_for(3).name, recipe_for(3).budget, recipe_for(2).budget, recipe_for(3, quick=True).budget
    ('mesh', 180.0, 180.0, 60.0)
    >>> recipe_for(3, signed=False).name, recipe_for(2, quick=True).resolution, recipe_for(3, scan=True).budget
    ('field-3d', 256, 180.0)
    >>> recipe_for(3, recipe="paper").model, recipe_for(3, recipe="paper").training["loss"]
    ({'layers': 20, 'width': 128}, 'hkr')
    """
    if recipe == "paper":  # the paper's network, loss and sampling, in float32, in the same budget
        base = recipe_for(dim, quick, device, signed=False)
        training = {key: value for key, value in base.training.items()
                    if key not in ("lr", *MUON) and (key, value) != ("matmul_precision", "bf16")}
        return base.replace(name=f"paper ({base.name})", model={"layers": 20, "width": 128},
                            training={**training, "loss": "hkr", "recipe": "paper", "batch_size": 4096})
    if device is not None and str(device).startswith("cuda"):
        return _GPU[dim]
    kind = ("scan" if scan else "mesh") if dim == 3 else "outline"
    kind = kind if signed else f"field-{dim}d"
    chosen = _CPU[f"{kind}-quick" if quick else kind]
    training = {"checkpoint_every": CPU_CHECKPOINT_EVERY, **chosen.training}
    if bf16_is_fast("cpu"):  # elsewhere bfloat16 is emulated, and slower than float32
        training["matmul_precision"] = "bf16"
    return chosen.replace(training=training)
