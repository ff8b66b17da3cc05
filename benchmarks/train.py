"""Training benchmark: throughput and quality at a fixed wall-clock budget, on the Stanford bunny.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.train [--budget SECONDS] [--device cpu|cuda]

Compares, for the paper's SLL 20 x 128 network and the hKR loss:

* ``research loop``: a loop written the way the public research code does it,
  a torch ``DataLoader`` over a ``TensorDataset``, batch 200, the Lipschitz
  parametrisation recomputed at every call (no freezing for the test
  evaluation), the paper's constants (lr 5e-4, margin 0.01, lambda 1 -> 10 ->
  100 over the first epochs);
* ``lipsdf trainer``: :class:`lipsdf.training.Trainer`, tensors on the device,
  batches sliced from a shuffled index, at batch 200 (same batches as the
  loop) and at its default batch size; with the ``paper`` recipe and the
  default ``lipsdf`` recipe.

Throughput is points per second over the same number of batches in one run
(ratios, since these machines are noisy). Quality: each contender trains for
the same wall-clock budget (default 300 s), then the test mean / max absolute
error against exact signed distances, sign accuracy beyond 2% of the
diagonal, and the Chamfer L1 distance between the zero level set (marching
cubes on a 96^3 grid) and the mesh, all as fractions of the bounding-box
diagonal. Writes benchmarks/results/train.json and train.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from lipsdf.dataset import PointDataset
from lipsdf.metrics import distance_errors
from lipsdf.field import NeuralField
from lipsdf.geometry.io import load_shape
from lipsdf.losses import hkr_loss
from lipsdf.nn import build_model
from lipsdf.query import contour
from lipsdf.sampling import sample
from lipsdf.training import EpochRecords, Trainer, TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
MODEL = {"arch": "sll", "dim": 3, "layers": 20, "width": 128}
RESEARCH_BATCH = 200
GRID = 96


def research_loop(dataset: PointDataset, device: str, budget: float = math.inf, max_batches: int | None = None,
                  seed: int = 0):
    """hKR training the research-code way; stops after ``budget`` seconds or ``max_batches`` batches."""
    torch.manual_seed(seed)
    model = build_model(MODEL).to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-4)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(dataset.points), torch.as_tensor(dataset.labels).float()),
        batch_size=RESEARCH_BATCH, shuffle=True)
    started, batches, epoch = time.perf_counter(), 0, 0
    while True:
        lam = (1.0, 10.0, 100.0)[min(epoch, 2)]
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = hkr_loss(model(x), y, 0.01, lam)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            batches += 1
            if batches == max_batches or time.perf_counter() - started > budget:
                return model, batches, time.perf_counter() - started
        epoch += 1


def resized(dataset: PointDataset, n: int) -> PointDataset:
    """The first ``n`` training points (repeated when the dataset has fewer), for exactly one epoch of ``n``."""
    index = np.arange(n) % len(dataset.points)
    arrays = dict(dataset.arrays, **{name: dataset.arrays[name][index] for name in ("points", "labels", "distances")
                                     if name in dataset.arrays})
    return PointDataset(dataset.mode, arrays, dataset.normalization, dataset.metadata)


def trainer_seconds(dataset: PointDataset, batch: int, batches: int, device: str, recipe: str = "paper",
                    compile: bool = False) -> float:
    """Seconds for one epoch of ``batches`` batches: the second of two, so compilation is not counted."""
    data = resized(dataset, batch * batches)
    config = TrainingConfig(epochs=2, batch_size=batch, recipe=recipe, checkpoint_every=0, compile=compile,
                            loss="hkr")
    epochs = EpochRecords()
    Trainer(data, MODEL, config, device=device, callbacks=[epochs]).run()
    return epochs.records[1]["seconds"] - epochs.records[0]["seconds"]


def throughput(dataset: PointDataset, device: str, batches: int = 300) -> dict:
    research_loop(dataset, device, max_batches=20)  # warm up
    _, _, loop_seconds = research_loop(dataset, device, max_batches=batches)
    ours_200 = trainer_seconds(dataset, RESEARCH_BATCH, batches, device)
    default_batch = TrainingConfig().batch_size
    big_batches = max(batches // 10, 10)
    ours_default = trainer_seconds(dataset, default_batch, big_batches, device)
    ours_compiled = trainer_seconds(dataset, default_batch, big_batches, device, compile=True)
    rate = {
        "research_loop_batch200": RESEARCH_BATCH * batches / loop_seconds,
        "lipsdf_batch200": RESEARCH_BATCH * batches / ours_200,
        f"lipsdf_batch{default_batch}": default_batch * big_batches / ours_default,
        f"lipsdf_batch{default_batch}_compiled": default_batch * big_batches / ours_compiled,
    }
    return {"points_per_second": {k: round(v) for k, v in rate.items()},
            "speedup_same_batch": round(rate["lipsdf_batch200"] / rate["research_loop_batch200"], 2),
            "speedup_default_batch": round(rate[f"lipsdf_batch{default_batch}"] / rate["research_loop_batch200"], 2),
            "speedup_compiled": round(rate[f"lipsdf_batch{default_batch}_compiled"] / rate["research_loop_batch200"], 2),
            "batches": {"batch200": batches, f"batch{default_batch}": big_batches}}


def chamfer_l1(field: NeuralField, surface: np.ndarray) -> float:
    """Symmetric mean distance between the zero level set (marching cubes, GRID^3) and surface samples."""
    mesh = contour(field, 0.0, resolution=GRID).contours[0].shape
    if mesh is None:
        return float("inf")
    a = cKDTree(mesh.vertices).query(surface)[0].mean()
    b = cKDTree(surface).query(mesh.vertices)[0].mean()
    return float(0.5 * (a + b))


def quality(field: NeuralField, dataset: PointDataset, diagonal: float) -> dict:
    points, truth = dataset.world("test_points"), dataset.world("test_distances")
    metrics = distance_errors(field(points), truth, True, diagonal)
    far = np.abs(truth) > 0.02 * diagonal
    surface = dataset.world("surface_points")[:20_000]
    return {"mae_rel": round(metrics["mae_rel"], 5), "max_error_rel": round(metrics["max_error_rel"], 5),
            "sign_accuracy_far": round(float((np.sign(field(points[far])) == np.sign(truth[far])).mean()), 5),
            "chamfer_l1_rel": round(chamfer_l1(field, surface) / diagonal, 5)}


def fixed_budget(dataset: PointDataset, device: str, budget: float, rates: dict) -> dict:
    diagonal = float(np.linalg.norm(np.ptp(dataset.world("surface_points"), axis=0)))
    out = {}
    model, batches, seconds = research_loop(dataset, device, budget=budget)
    field = NeuralField(model, dataset.normalization, MODEL, metadata=dataset.metadata, device=device)
    out["research loop (batch 200, paper constants)"] = dict(quality(field, dataset, diagonal), batches=batches,
                                                              seconds=round(seconds, 1))
    default_batch = TrainingConfig().batch_size
    rate = rates["points_per_second"][f"lipsdf_batch{default_batch}"]
    epochs = max(int(budget * rate / len(dataset.points)), 1)  # the schedules need the length up front
    compiled_rate = rates["points_per_second"][f"lipsdf_batch{default_batch}_compiled"]
    compiled_epochs = max(int(budget * compiled_rate / len(dataset.points)), 1)
    for recipe, compile, n_epochs in (("paper", False, epochs), ("lipsdf", False, epochs),
                                      ("lipsdf", True, compiled_epochs)):
        started = time.perf_counter()
        config = TrainingConfig(epochs=n_epochs, recipe=recipe, checkpoint_every=0, compile=compile, loss="hkr")
        field = Trainer(dataset, MODEL, config, device=device).run()
        name = f"lipsdf trainer, {recipe} recipe{', compiled' if compile else ''} (batch {default_batch}, {n_epochs} epochs)"
        out[name] = dict(quality(field, dataset, diagonal), seconds=round(time.perf_counter() - started, 1))
    return out


def write_results(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if results["device"] == "cpu" else f"_{results['device']}"
    (RESULTS / f"train{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    t = results["throughput"]
    lines = ["# Training benchmark", "",
             f"Machine: {results['machine']}, device {results['device']}. Run: `{results['command']}` "
             f"on {results['date']}. Model: SLL 20 x 128, hKR, bunny signed dataset "
             f"({results['points']} points).", "",
             "## Throughput (points per second, same run)", "",
             "| loop | points/s |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in t["points_per_second"].items()]
    lines += ["", f"Speed-up over the research loop: {t['speedup_same_batch']}x at the same batch size (200), "
                  f"{t['speedup_default_batch']}x at lipsdf's default batch size, {t['speedup_compiled']}x with "
                  "`--compile` at that batch size.", "",
              f"## Quality after {results['budget_s']:.0f} s of training"
              + (" (not run: `--skip-quality`)" if not results["quality"] else ""), "",
              "Fractions of the bounding-box diagonal; sign accuracy on test points farther than 2% of it.", "",
              "| trainer | test mean error | test max error | Chamfer L1 | sign accuracy | time (s) |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, q in results["quality"].items():
        lines.append(f"| {name} | {100 * q['mae_rel']:.3f}% | {100 * q['max_error_rel']:.2f}% | "
                     f"{100 * q['chamfer_l1_rel']:.3f}% | {100 * q['sign_accuracy_far']:.2f}% | {q['seconds']} |")
    (RESULTS / f"train{suffix}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="wall-clock seconds per contender (default 300)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--skip-quality", action="store_true", help="measure the throughput only")
    args = parser.parse_args()
    mesh = load_shape(DATA / "meshes" / "stanford-bunny.obj")
    dataset = sample(mesh, "signed", n=args.points, n_test=20_000, seed=0)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
                   + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""),
        "device": args.device,
        "command": "python benchmarks/train.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "points": len(dataset.points),
        "budget_s": args.budget,
    }
    results["throughput"] = throughput(dataset, args.device)
    print(json.dumps(results["throughput"], indent=2), flush=True)
    results["quality"] = ({} if args.skip_quality else
                          fixed_budget(dataset, args.device, args.budget, results["throughput"]))
    print(json.dumps(results["quality"], indent=2), flush=True)
    write_results(results)


if __name__ == "__main__":
    main()
