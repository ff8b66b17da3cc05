"""Scans: lipsdf's default fit of a point cloud against Screened Poisson, both measured against the true
surface.

Run by hand (not part of the tests); needs ../shared/data and Open3D (``pip install open3d``; on Debian it
also needs ``libusb-1.0-0``):

    .venv/bin/python -m benchmarks.quality --scans          # runs these rows into quality.json / quality.md
    .venv/bin/python -m benchmarks.scans [NAME ...]          # the same rows, printed

Two scans: the shared raw bunny scan (34,834 points without normals; the truth is the bunny mesh), and a
scan made here from a shared mesh, 20,000 points spread by area on spot with Gaussian noise of 0.2% of its
diagonal and the true normals (the truth is spot itself). For each:

* ``ours``: ``lipsdf fit SCAN --reference MESH``, defaults, as a new process (its metrics are against the
  mesh);
* ``poisson``: Open3D's Screened Poisson reconstruction, depth 9, of the same points (normals estimated
  from 30 neighbours and oriented by consistent tangent planes where the scan has none), with the 2% of
  vertices of lowest density trimmed, as its documentation suggests; measured against the mesh as
  ``lipsdf eval`` measures a contour: Chamfer, Hausdorff and normal consistency between 100k samples of each
  surface, with exact distances to the other.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.defaults import measure_fit
from lipsdf.geometry import GroundTruth, PointCloud, TriangleMesh
from lipsdf.geometry.io import load_shape, save_shape
from lipsdf.geometry.surface import surface_samples
from lipsdf.metrics import bounding_box_diagonal, normal_consistency, surface_distances

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NOISE = 0.002  # of the diagonal
SURFACE_SAMPLES = 100_000
POISSON_DEPTH, POISSON_TRIM = 9, 0.02


def bunny_scan(folder: Path) -> Path:
    return DATA / "pointclouds" / "bunny_scan_points.xyz"


def noisy_spot(folder: Path) -> Path:
    """20k points of spot with noise of 0.2% of its diagonal and the true normals, written into ``folder``."""
    mesh = load_shape(DATA / "meshes" / "spot.obj")
    rng = np.random.default_rng(0)
    points, normals = surface_samples(mesh, 20_000, rng)
    points = points + rng.normal(scale=NOISE * bounding_box_diagonal(mesh.vertices), size=points.shape)
    path = folder / "spot_noisy_scan.xyz"
    save_shape(PointCloud(points, normals), path)
    return path


# name -> (make the scan file in a folder, the true surface)
SCANS: dict[str, tuple[Callable[[Path], Path], Path]] = {
    "bunny_scan": (bunny_scan, DATA / "meshes" / "stanford-bunny.obj"),
    "spot_noisy_scan": (noisy_spot, DATA / "meshes" / "spot.obj"),
}


def mesh_surface_metrics(mesh: TriangleMesh, reference, seed: int = 0) -> dict:
    """Chamfer L1/L2, Hausdorff (world units and ``*_rel`` of the reference's diagonal) and normal
    consistency of ``mesh`` against ``reference``, as :func:`lipsdf.evaluate.evaluate_field` measures a
    contour."""
    rng = np.random.default_rng(seed)
    ours, our_normals = surface_samples(mesh, SURFACE_SAMPLES, rng)
    theirs, their_normals = surface_samples(reference, SURFACE_SAMPLES, rng)
    lengths = surface_distances(GroundTruth(reference).unsigned_distance(ours),
                                GroundTruth(mesh).unsigned_distance(theirs))
    diagonal = bounding_box_diagonal(reference.vertices)
    return {**lengths, "chamfer_l1_rel": lengths["chamfer_l1"] / diagonal,
            "hausdorff_rel": lengths["hausdorff"] / diagonal, "chamfer_l2_rel": lengths["chamfer_l2"] / diagonal ** 2,
            "normal_consistency": normal_consistency(ours, our_normals, theirs, their_normals)}


def poisson(scan: PointCloud) -> tuple[TriangleMesh, float]:
    """Open3D's Screened Poisson surface of ``scan`` (trimmed) and the seconds it took, normals included."""
    import open3d as o3d

    started = time.perf_counter()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(scan.points))
    if scan.normals is not None:
        cloud.normals = o3d.utility.Vector3dVector(scan.normals)
    else:
        cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(30))
        cloud.orient_normals_consistent_tangent_plane(30)
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=POISSON_DEPTH)
    densities = np.asarray(densities)
    mesh.remove_vertices_by_mask(densities < np.quantile(densities, POISSON_TRIM))
    seconds = time.perf_counter() - started
    return TriangleMesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles)), seconds


def run_scan(name: str) -> dict:
    """Both contenders on one scan: ``{"ours": measure_fit's row, "poisson": seconds and surface metrics}``."""
    make, truth = SCANS[name]
    with tempfile.TemporaryDirectory() as folder:
        path = make(Path(folder))
        scan = load_shape(path)
        surface, seconds = poisson(scan)
        rows = {"poisson": {"seconds": round(seconds, 1), "surface": mesh_surface_metrics(surface, load_shape(truth)),
                            "date": time.strftime("%Y-%m-%d")},
                "ours": measure_fit(path, {"reference": str(truth)})}
    rows["points"], rows["normals"] = len(scan.points), scan.normals is not None
    return rows


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    names = sys.argv[1:] or list(SCANS)
    unknown = [name for name in names if name not in SCANS]
    if unknown:
        sys.exit(f"unknown scans {unknown}; choose from {list(SCANS)}")
    for name in names:
        rows = run_scan(name)
        ours, theirs = rows["ours"], rows["poisson"]["surface"]
        print(f"{name}: ours {100 * ours['chamfer_l1_rel']:.4f}% NC {ours['normal_consistency']:.4f} in "
              f"{ours['wall_seconds']:.0f} s; poisson {100 * theirs['chamfer_l1_rel']:.4f}% NC "
              f"{theirs['normal_consistency']:.4f} in {rows['poisson']['seconds']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
