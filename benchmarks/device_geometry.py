"""The device-side geometry (PrimitiveTree) against libigl: seconds and agreement on the same points.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.device_geometry [--device cuda]

For each shape, 50,000 points drawn as a fit draws them (a quarter uniform in the unit box, the rest near
the surface), in the shape's unit box; exact distances and winding numbers by libigl (float64, on the CPU)
and by ``PrimitiveTree`` (float32, on ``--device``, default the CPU), in the same process. Writes
benchmarks/results/device_geometry.json and device_geometry.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.provenance import provenance
from lipsdf.geometry.bvh import PrimitiveTree
from lipsdf.geometry.distance import GroundTruth
from lipsdf.geometry.io import load_shape
from lipsdf.geometry.normalize import Normalization
from lipsdf.geometry.shapes import Polyline
from lipsdf.sampling import SamplingConfig, mixed_samples

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
SHAPES = ["meshes/stanford-bunny.obj", "meshes/fandisk.obj", "polylines2d/jpn.obj"]
POINTS = 50_000


def timed(fn):
    started = time.perf_counter()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, value


def measure(name: str, device: str) -> dict:
    shape = load_shape(DATA / name)
    unit = shape.transformed(Normalization.fit(*shape.bounds(), padding=0.1).to_unit)
    points = mixed_samples(unit, POINTS, SamplingConfig(), np.random.default_rng(0))
    libigl = GroundTruth(unit)
    oriented = libigl.oriented_shape
    build, tree = timed(lambda: PrimitiveTree(oriented.vertices, oriented.edges if isinstance(oriented, Polyline)
                                              else oriented.faces, device))
    tree.unsigned_distance(points[:100]), tree.winding_number(points[:100])  # the device's first kernels
    igl_distance_s, distances = timed(lambda: libigl.unsigned_distance(points))
    igl_winding_s, winding = timed(lambda: libigl.winding_number(points))
    tree_distance_s, ours = timed(lambda: tree.unsigned_distance(points).double().cpu().numpy())
    tree_winding_s, our_winding = timed(lambda: tree.winding_number(points).double().cpu().numpy())
    diagonal = float(np.linalg.norm(np.ptp(points, axis=0)))
    away = distances > 0.01 * diagonal
    return {"shape": name, "primitives": len(oriented.faces if hasattr(oriented, "faces") else oriented.edges),
            "points": POINTS, "device": device, "build_s": build, "libigl_distance_s": igl_distance_s,
            "libigl_winding_s": igl_winding_s, "tree_distance_s": tree_distance_s, "tree_winding_s": tree_winding_s,
            "largest_distance_difference_rel": float(np.abs(ours - distances).max() / diagonal),
            "largest_winding_difference": float(np.abs(our_winding - winding).max()),
            "sign_differences_away": int(((our_winding > 0.5) != (winding > 0.5))[away].sum()), **provenance()}


def write(rows: list[dict]) -> None:
    (RESULTS / "device_geometry.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    lines = ["# Device-side geometry against libigl", "",
             f"`python -m benchmarks.device_geometry`: {POINTS:,} points a shape, drawn as a fit draws them, in "
             "its unit box; libigl in float64 on the CPU against lipsdf's `PrimitiveTree` in float32 on the "
             "row's device, in the same process (ratios: the tree's seconds over libigl's). Differences: "
             "distances as a share of the points' diagonal; signs compared 1% of the diagonal away from the "
             "surface.", "",
             "| shape | primitives | device | tree build s | distance: libigl s / tree s | winding: libigl s / tree s | "
             "largest distance difference | largest winding difference | sign differences away | commit, date |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['primitives']:,} | {r['device']} | {r['build_s']:.2f} | "
                     f"{r['libigl_distance_s']:.2f} / {r['tree_distance_s']:.2f} "
                     f"({r['tree_distance_s'] / r['libigl_distance_s']:.0f}x) | "
                     f"{r['libigl_winding_s']:.2f} / {r['tree_winding_s']:.2f} "
                     f"({r['tree_winding_s'] / r['libigl_winding_s']:.0f}x) | "
                     f"{r['largest_distance_difference_rel']:.1e} | {r['largest_winding_difference']:.3f} | "
                     f"{r['sign_differences_away']} | {r['commit']}, {r['date']} |")
    (RESULTS / "device_geometry.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="where the tree runs (default: cpu)")
    args = parser.parse_args()
    path = RESULTS / "device_geometry.json"
    rows = [r for r in json.loads(path.read_text())["rows"] if r["device"] != args.device] if path.exists() else []
    for name in SHAPES:
        rows.append(measure(name, args.device))
        write(rows)
        print(json.dumps(rows[-1]))


if __name__ == "__main__":
    main()
