"""Geometry benchmarks: ground-truth kernels, point-cloud normals, `lipsdf sample`.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.geometry

Writes benchmarks/results/geometry.json and geometry.md. Speed-ups are ratios
measured in the same run, since these machines are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import cKDTree

from lipsdf.geometry.distance import GroundTruth
from lipsdf.geometry.io import load_shape
from lipsdf.geometry.normals import DEFAULT_K, oriented_normals_and_areas
from lipsdf.geometry.shapes import PointCloud

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
N_QUERIES = 1_000_000


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def kernel_timings() -> list[dict]:
    rng = np.random.default_rng(0)
    cases = [
        ("2D polyline (idn.obj, 237 segments)", "polylines2d/idn.obj", ["unsigned_distance", "winding_number"]),
        ("3D polyline (fandisk_features.obj, 722 segments)", "polylines3d/fandisk_features.obj",
         ["unsigned_distance"]),
        ("mesh (stanford-bunny.obj, 69,451 triangles)", "meshes/stanford-bunny.obj",
         ["unsigned_distance", "winding_number", "signed_distance"]),
        ("point cloud (bunny_scan_points.xyz, 34,834 points)", "pointclouds/bunny_scan_points.xyz",
         ["unsigned_distance", "winding_number"]),
    ]
    rows = []
    for label, name, kernels in cases:
        shape = load_shape(DATA / name)
        lower, upper = shape.bounds()
        pad = 0.2 * (upper - lower)
        queries = rng.uniform(lower - pad, upper + pad, size=(N_QUERIES, shape.dim))
        truth = GroundTruth(shape)
        for kernel in kernels:
            # First call builds the kernel's acceleration structure (AABB tree, octree, normals).
            start = time.perf_counter()
            getattr(truth, kernel)(queries[:10])
            build = time.perf_counter() - start
            seconds, _ = best_of(lambda: getattr(truth, kernel)(queries), repeats=2)
            rows.append({"shape": label, "kernel": kernel, "queries": N_QUERIES, "build_s": round(build, 3),
                         "seconds": round(seconds, 3), "queries_per_s": round(N_QUERIES / seconds)})
            print(f"{label:52s} {kernel:18s} {seconds:7.2f} s  ({N_QUERIES / seconds / 1e6:.2f} M/s)")
    return rows


# ---------------------------------------------------------------- the per-point loop, for comparison


def loop_normals_and_areas(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same algorithm as lipsdf.geometry.normals, written point by point, as research scripts do."""
    tree = cKDTree(points)
    n = len(points)
    normals = np.zeros((n, 3))
    neighbours = np.zeros((n, k), dtype=np.int64)
    areas = np.zeros(n)
    for i in range(n):
        distances, index = tree.query(points[i], k=k + 1)
        neighbours[i] = index[1:]
        local = points[index] - points[index].mean(axis=0)
        _, vectors = np.linalg.eigh(local.T @ local)
        normals[i] = vectors[:, 0]
        areas[i] = np.pi * distances[-1] ** 2 / k
    rows, cols, weights = [], [], []
    for i in range(n):
        for j in neighbours[i]:
            rows.append(i)
            cols.append(j)
            weights.append(1.0 - abs(float(normals[i] @ normals[j])) + 1e-6)
    graph = coo_matrix((weights, (rows, cols)), shape=(n, n)).tocsr()
    graph = graph.maximum(graph.T)
    tree_edges = minimum_spanning_tree(graph).tocoo()
    adjacency = [[] for _ in range(n)]
    for a, b in zip(tree_edges.row, tree_edges.col):
        adjacency[a].append(b)
        adjacency[b].append(a)
    visited = np.zeros(n, dtype=bool)
    for start in np.argsort(-points[:, 0]):  # each component from its point of largest x
        if visited[start]:
            continue
        component = [start]
        visited[start] = True
        queue = deque([start])
        while queue:
            i = queue.popleft()
            for j in adjacency[i]:
                if not visited[j]:
                    visited[j] = True
                    if normals[i] @ normals[j] < 0:
                        normals[j] = -normals[j]
                    queue.append(j)
                    component.append(j)
        members = np.array(component)
        if normals[start] @ (points[start] - points[members].mean(axis=0)) < 0:
            normals[members] = -normals[members]
    return normals, areas


def normals_benchmark() -> dict:
    cloud = load_shape(DATA / "pointclouds" / "bunny_scan_points.xyz")
    points, k = cloud.points, DEFAULT_K
    ours_s, (normals, areas, _) = best_of(lambda: oriented_normals_and_areas(PointCloud(points), k), repeats=5)
    loop_s, (loop_normals, loop_areas) = best_of(lambda: loop_normals_and_areas(points, k), repeats=1)
    agreement = float(np.mean(np.sum(normals * loop_normals, axis=1) > 0.999))
    print(f"normals + areas, bunny scan: ours {ours_s:.2f} s, loop {loop_s:.2f} s, "
          f"speed-up {loop_s / ours_s:.1f}x, same normals on {agreement:.4%}")
    return {"points": len(points), "k": k, "ours_s": round(ours_s, 3), "loop_s": round(loop_s, 3),
            "speedup": round(loop_s / ours_s, 1), "normals_identical_fraction": agreement,
            "areas_max_abs_diff": float(np.abs(areas - loop_areas).max())}


def sample_benchmark() -> dict:
    bunny = DATA / "meshes" / "stanford-bunny.obj"
    lipsdf = Path(sys.executable).parent / "lipsdf"
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([str(lipsdf), "sample", str(bunny), "-n", "100000", "-o", f"{tmp}/bunny.npz", "-q"],
                           check=True)
            times.append(time.perf_counter() - start)
        size = os.path.getsize(f"{tmp}/bunny.npz")
    print(f"lipsdf sample bunny -n 100000 (whole command, signed): {min(times):.2f} s")
    return {"command": "lipsdf sample stanford-bunny.obj -n 100000 (signed, 20000 test points)",
            "seconds": round(min(times), 2), "dataset_bytes": size}


def write_results(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "geometry.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Geometry benchmarks", "",
             f"Machine: {results['machine']}. Run: `{results['command']}` on {results['date']}.", "",
             f"## Ground-truth kernels, {N_QUERIES:,} random queries in the padded bounding box", "",
             "| shape | kernel | build (s) | 1M queries (s) | queries/s |", "|---|---|---:|---:|---:|"]
    for row in results["kernels"]:
        lines.append(f"| {row['shape']} | {row['kernel']} | {row['build_s']} | {row['seconds']} | "
                     f"{row['queries_per_s']:,} |")
    n = results["normals"]
    lines += ["", f"## Normals + orientation + areas, bunny scan ({n['points']:,} points, k = {n['k']})", "",
              "| implementation | seconds |", "|---|---:|",
              f"| per-point Python loop (same algorithm) | {n['loop_s']} |",
              f"| lipsdf (vectorised) | {n['ours_s']} |", "",
              f"Speed-up: **{n['speedup']}x**. The two give the same normal on "
              f"{n['normals_identical_fraction']:.2%} of the points; areas differ by at most "
              f"{n['areas_max_abs_diff']:.1e}.", "",
              "## `lipsdf sample` on the bunny", "",
              f"`{results['sample']['command']}`: **{results['sample']['seconds']} s** for the whole command "
              f"(start-up, loading, sampling, ground truth, writing {results['sample']['dataset_bytes'] / 1e6:.1f} MB)."]
    (RESULTS / "geometry.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    if not DATA.is_dir():
        sys.exit("benchmarks need ../shared/data")
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/geometry.py",
        "kernels": kernel_timings(),
        "normals": normals_benchmark(),
        "sample": sample_benchmark(),
    }
    write_results(results)
    print(f"wrote {RESULTS / 'geometry.md'}")


if __name__ == "__main__":
    main()
