"""Large inputs: `lipsdf sample` on meshes of millions of triangles and clouds of millions of points.

Run by hand, alone on the machine (not part of the tests):

    .venv/bin/python -m benchmarks.scale [--sizes 8 9] [--cloud 5000000] [-n 200000]

Each mesh is an icosphere of ``20 * 4**s`` triangles (s = 8: 1.3M, s = 9: 5.2M) written as OBJ, or the
shared bunny with each triangle split in four, twice (1.1M; skipped without ../shared/data); the
cloud is points on a sphere with their normals, as `.xyz`. Wall clock and peak memory are those of the
`lipsdf sample` command (a new process, reading the file included); where the time goes is timed
in this process on the same shape, one public step at a time: reading the file, orienting the mesh, the
winding numbers and the distances of as many points as the dataset holds; then the choices that make
these fast (`_levers`), each against its alternative on the same points. Writes
benchmarks/results/scale.json and scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import igl
import numpy as np
import trimesh
from scipy.spatial import cKDTree

from benchmarks.messy import icosphere
from benchmarks.provenance import provenance
from lipsdf.geometry import GroundTruth, PointCloud, TriangleMesh, load_shape, save_points, save_shape
from lipsdf.geometry.distance import winding_subset
from lipsdf.geometry.queries import morton_order

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUNNY = ROOT.parent / "shared" / "data" / "meshes" / "stanford-bunny.obj"


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 2)


# `lipsdf sample ...` that, on its way out, writes its own peak resident set (the kernel's high-water mark of
# its memory since it started) to stderr. getrusage's maxrss cannot tell it: a child forked from this
# process inherits the high-water mark of this process, which holds the previous input's trees.
_MEASURED = ("import re, runpy, sys\nsys.argv = ['lipsdf', *sys.argv[1:]]\ntry:\n"
             "    runpy.run_module('lipsdf', run_name='__main__')\nfinally:\n"
             "    status = open('/proc/self/status').read()\n"
             "    print('peak_kib', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n")


def _command(path: Path, n: int, folder: Path, source: Optional[Path] = None) -> dict:
    """`lipsdf sample PATH -n N` in a new process: its wall clock, peak memory and its printed lines;
    ``source``: the ``src`` folder of another checkout to run instead of this one."""
    environment = dict(os.environ, PYTHONPATH=str(source)) if source is not None else None
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, "sample", str(path), "-n", str(n), "-o",
                           str(folder / f"{path.stem}.npz")], capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"lipsdf sample {path.name} failed: {done.stderr.strip()}")
    peak = int(done.stderr.split("peak_kib")[-1].split()[0]) / 2 ** 20  # KiB -> GiB
    return {"wall_seconds": round(wall, 1), "peak_gib": round(peak, 2),
            "said": [line for line in done.stdout.splitlines() if line.startswith(("mesh", "orientation", "point"))]}


def _stages(path: Path, n: int) -> dict:
    """Where the time goes, step by step, in this process: as many winding numbers as the dataset's points,
    and as many exact distances as `sample` computes (all the points of a mesh's dataset; for a cloud,
    which has no exact distance to train on, those of its 15,000 test points off the surface)."""
    shape, read = _timed(lambda: load_shape(path))
    truth = GroundTruth(shape)
    stages = {"read": read}
    if isinstance(shape, TriangleMesh):
        stages["orient"] = _timed(lambda: truth.mesh_report)[1]
    points = np.random.default_rng(0).uniform(*shape.bounds(), size=(n, 3))
    stages["winding"] = _timed(lambda: truth.winding_number(points))[1]
    queried = points if isinstance(shape, TriangleMesh) else points[:15_000]
    stages["distance"] = _timed(lambda: truth.unsigned_distance(queried))[1]
    return {**stages, "levers": _levers(shape, queried)}


def _levers(shape, points: np.ndarray) -> list[dict]:
    """The choices that make `sample` fast on large inputs, each timed against its alternative on the same
    points: libigl's distances in Morton order against the points' own order, and its winding-number
    hierarchy built once against rebuilt by every call (a mesh); libigl's tree of a cloud's points against
    SciPy's k-d tree, built and queried (on 1,000 of the query points), and libigl's one-call winding numbers
    of the cloud's subset (octree and expansion built inside the call) against its separate precompute
    step followed by the query, a cloud."""
    if isinstance(shape, TriangleMesh):
        vertices, faces = np.ascontiguousarray(shape.vertices), np.ascontiguousarray(shape.faces)
        tree = igl.AABB()
        tree.init(vertices, faces)
        ordered = np.ascontiguousarray(points[morton_order(points)])
        hierarchy = igl.FastWindingNumberBVH()
        hierarchy.init(vertices, faces)
        return [{"lever": "distances: queries in Morton order", "without": _timed(
                     lambda: tree.squared_distance(vertices, faces, points))[1],
                 "with": _timed(lambda: tree.squared_distance(vertices, faces, ordered))[1]},
                {"lever": "winding numbers: hierarchy built once, not at each call (a call for 1 point)",
                 "without": _timed(lambda: igl.fast_winding_number(vertices, faces, points[:1]))[1],
                 "with": _timed(lambda: hierarchy.winding_number(points[:1]))[1]}]
    cloud, few = np.ascontiguousarray(shape.points), points[:1000]
    elements = np.arange(len(cloud))[:, None]
    kd_tree, kd_built = _timed(lambda: cKDTree(cloud))
    tree = igl.AABB()
    built = _timed(lambda: tree.init(cloud, elements))[1]
    return [{"lever": "cloud distances in libigl's tree, not SciPy's k-d tree: building it", "without": kd_built,
             "with": built},
            {"lever": "cloud distances in libigl's tree, not SciPy's k-d tree: 1,000 of the 15,000 queries",
             "without": _timed(lambda: kd_tree.query(few, workers=-1))[1],
             "with": _timed(lambda: tree.squared_distance(cloud, elements, few))[1]},
            _cloud_winding_lever(shape, few)]


def _cloud_winding_lever(shape: PointCloud, queries: np.ndarray) -> dict:
    pick = winding_subset(len(shape.points))  # the points `sample` reads the cloud's inside from
    points = np.ascontiguousarray(shape.points[pick])
    normals = np.ascontiguousarray(shape.normals[pick] if shape.normals is not None else points)
    areas = np.full(len(points), 1.0 / len(points))

    def precomputed():
        indices, children, _, _ = igl.octree(points)
        expansion = igl.fast_winding_number_precompute(points, normals, areas, indices, children)
        return igl.fast_winding_number(points, normals, areas, indices, children, *expansion, queries)

    return {"lever": f"cloud winding numbers ({len(points):,} points): libigl's one call, not its precompute "
                     "binding then a query (1,000 queries)",
            "without": _timed(precomputed)[1],
            "with": _timed(lambda: igl.fast_winding_number(points, normals, areas, queries))[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[8, 9], help="icosphere subdivisions")
    parser.add_argument("--cloud", type=int, default=5_000_000, help="points of the cloud (0: none)")
    parser.add_argument("--bunny", type=int, default=2, help="times the shared bunny is split 1 -> 4 (0: none)")
    parser.add_argument("-n", type=int, default=200_000, help="training points of each dataset")
    parser.add_argument("--against", default=None, metavar="COMMIT",
                        help="also time COMMIT's `lipsdf sample` on each input, interleaved with this one's (twice each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        other = None
        if args.against:
            other = Path(folder) / "against"
            subprocess.run(["git", "worktree", "add", "--detach", str(other), args.against], cwd=ROOT, check=True,
                           capture_output=True)
        try:
            rows = _rows(args, Path(folder), other)
        finally:
            if other is not None:
                subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, capture_output=True)
    _write(rows, args.n)


def _row(label: str, path: Path, n: int, folder: Path, other: Optional[Path]) -> dict:
    row = {"input": label, "megabytes": round(path.stat().st_size / 1e6), **_command(path, n, folder),
           "stages": _stages(path, n)}
    if other is not None:  # interleaved, so that both see the same machine
        walls = {"theirs": [], "ours": []}
        for _ in range(2):
            walls["theirs"].append(_command(path, n, folder, other / "src")["wall_seconds"])
            walls["ours"].append(_command(path, n, folder)["wall_seconds"])
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=other, capture_output=True, text=True)
        row["against"] = {"commit": commit.stdout.strip(), **walls}
    print(row, flush=True)
    return row


def _rows(args: argparse.Namespace, folder: Path, other: Optional[Path]) -> list[dict]:
    rows = []
    for subdivisions in args.sizes:
        vertices, faces = icosphere(subdivisions)
        path = folder / f"icosphere_{subdivisions}.obj"
        save_shape(TriangleMesh(vertices, faces), path)
        rows.append(_row(f"icosphere mesh, {len(faces):,} triangles", path, args.n, folder, other))
    if args.bunny and BUNNY.exists():  # a real shape at that size: a sphere is the worst case of exact distances
        bunny = load_shape(BUNNY)
        vertices, faces = bunny.vertices, bunny.faces
        for _ in range(args.bunny):
            vertices, faces = trimesh.remesh.subdivide(vertices, faces)
        path = folder / "bunny_subdivided.obj"
        save_shape(TriangleMesh(vertices, faces), path)
        rows.append(_row(f"bunny split {4 ** args.bunny}-fold, {len(faces):,} triangles", path, args.n, folder, other))
    if args.cloud:
        points = np.random.default_rng(0).normal(size=(args.cloud, 3))
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        path = folder / "sphere_cloud.xyz"
        save_points(points, path, normals=points)
        rows.append(_row(f"point cloud with normals, {args.cloud:,} points", path, args.n, folder, other))
    return rows


def _write(rows: list[dict], n: int) -> None:
    """Write the rows, keeping the committed ones of other inputs (a rerun of some inputs replaces those)."""
    kept = json.loads((RESULTS / "scale.json").read_text())["rows"] if (RESULTS / "scale.json").exists() else []
    stamp = provenance()
    rows = [row for row in kept if row["input"] not in {r["input"] for r in rows}] + [dict(r, **stamp) for r in rows]
    result = {"rows": rows, "n": n, **stamp}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2))
    lines = ["# `lipsdf sample` on large inputs", "",
             f"`python -m benchmarks.scale`, {result['machine']}; each "
             f"`lipsdf sample FILE -n {n}` run alone, reading the file included. Peak memory: the command's own "
             "largest resident set (the kernel's high-water mark, VmHWM). Stages: the same steps timed one at a time in the benchmark's "
             f"process: winding numbers of {n:,} uniform points in the shape's box, and their distances (a cloud: of "
             "15,000 of them, the test points `sample` measures; uniform points are the slow case of a cloud on a "
             "sphere, as of a mesh).", "",
             "| input | file MB | wall s | peak GiB | read s | orient s | winding s | distance s | commit, date |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        stage = row["stages"]
        peak = row["peak_gib"] if "peak_gib" in row else f"{row['peak_gib_so_far']} (getrusage's figure, which counted the benchmark's own memory)"
        lines.append(f"| {row['input']} | {row['megabytes']} | {row['wall_seconds']} | {peak} | "
                     f"{stage['read']} | {stage.get('orient', '-')} | {stage['winding']} | {stage['distance']} | "
                     f"{row.get('commit', result['commit'])}, {row.get('date', result['date'])} |")
    lines += ["", "Levers, each timed against its alternative in the same run on the same points (seconds):", "",
              "| input | lever | without | with | ratio |", "|---|---|---:|---:|---:|"]
    for row in rows:
        for lever in row["stages"].get("levers", []):
            ratio = f"{lever['without'] / lever['with']:.1f}x" if lever["with"] >= 0.01 else "-"
            lines.append(f"| {row['input']} | {lever['lever']} | {lever['without']} | {lever['with']} | {ratio} |")
    compared = [row for row in rows if "against" in row]
    if compared:
        lines += ["", "Against an earlier commit, each command run twice, the two commits interleaved (wall seconds):",
                  "", "| input | commit | its runs | this commit's runs | ratio of the means |",
                  "|---|---|---|---|---:|"]
        for row in compared:
            theirs, ours = row["against"]["theirs"], row["against"]["ours"]
            lines.append(f"| {row['input']} | {row['against']['commit']} | {', '.join(map(str, theirs))} | "
                         f"{', '.join(map(str, ours))} | {np.mean(ours) / np.mean(theirs):.2f} |")
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
