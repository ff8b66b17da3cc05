"""What a perfect field would score: the exact signed distance's zero level, contoured as `lipsdf fit` does.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.contour_ceiling [MESH ...]    # names in ../shared/data/meshes

For each mesh, the exact signed distance (:class:`lipsdf.geometry.GroundTruth`) on the grid a fit's
contour uses (the sampling's padded box, :class:`lipsdf.query.grid.Grid` of 192 and 256 vertices along its
longest side), contoured by marching cubes and measured against the mesh as a fit's contour is (Chamfer,
Hausdorff, normal consistency; :func:`benchmarks.scans.mesh_surface_metrics`). A field can do no better on
that grid, so this is the ceiling of a target such as normal consistency >= 0.98. Writes
benchmarks/results/contour_ceiling.json and .md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from skimage.measure import marching_cubes

from benchmarks.provenance import provenance
from benchmarks.scans import mesh_surface_metrics
from lipsdf.geometry import GroundTruth, TriangleMesh
from lipsdf.geometry.io import load_shape
from lipsdf.geometry.normalize import Normalization
from lipsdf.query.grid import Grid
from lipsdf.sampling import SamplingConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "meshes"
RESULTS = ROOT / "benchmarks" / "results"
RESOLUTIONS = (192, 256)


def exact_contour(mesh: TriangleMesh, resolution: int) -> TriangleMesh:
    """The zero level of ``mesh``'s exact signed distance on the fit's contour grid at ``resolution``."""
    box = Normalization.fit(*mesh.bounds(), padding=SamplingConfig().padding).world_bounds()
    grid = Grid.covering(*box, resolution)
    values = GroundTruth(mesh).signed_distance(grid.vertices(np.arange(grid.size))).reshape(grid.shape)
    vertices, faces, _, _ = marching_cubes(values, 0.0, spacing=(grid.spacing,) * 3)
    return TriangleMesh(vertices + grid.lower, faces[:, ::-1].copy())  # outward, as the mesh's faces


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    names = sys.argv[1:] or ["armadillo", "max-planck"]
    rows = {}
    for name in names:
        mesh = load_shape(DATA / f"{name}.obj")
        for resolution in RESOLUTIONS:
            started = time.perf_counter()
            metrics = mesh_surface_metrics(exact_contour(mesh, resolution), mesh)
            rows[f"{name} at {resolution}"] = {key: metrics[key] for key in
                                               ("chamfer_l1_rel", "hausdorff_rel", "normal_consistency")}
            print(name, resolution, rows[f"{name} at {resolution}"], f"{time.perf_counter() - started:.0f} s",
                  flush=True)
    result = {"rows": rows, **provenance()}
    (RESULTS / "contour_ceiling.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# The exact distance's contour: what a perfect field scores", "",
             f"`{result['command']}`, commit {result['commit']}, {result['date']}. The exact signed distance's "
             "zero level on a fit's contour grid (vertices along the padded box's longest side), against the "
             "mesh; lengths are % of the diagonal.", "",
             "| mesh, grid | Chamfer L1 | Hausdorff | normal cons. |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {100 * r['chamfer_l1_rel']:.4f}% | {100 * r['hausdorff_rel']:.2f}% | "
              f"{r['normal_consistency']:.4f} |" for name, r in rows.items()]
    (RESULTS / "contour_ceiling.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
