"""Query benchmark: Lipschitz-pruned vs dense marching cubes, and sphere tracing, on the Stanford bunny.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.query [--device cpu|cuda] [--resolutions 128 256 512]

Fields (made once, then cached in out/bench/; delete them to remake):

* ``bunny_fit.pt``: the field of ``lipsdf fit`` with its defaults (``benchmarks.defaults`` leaves its
  bunny field there; otherwise this script runs that fit, 10 minutes on a 2-core CPU);
* ``bunny_siren_lr5e-4.pt``: SIREN 5 x 256 fitted to exact distances (200k-point
  ``dist`` dataset) with the eikonal term, 40 epochs at lr 5e-4: a field that is not 1-Lipschitz, for tracing.

Measures, in one run: network evaluations and seconds of dense and pruned
marching cubes at each resolution, and whether the two meshes are identical;
sphere tracing at 512 x 512 (steps per ray, rays per second, rays that step
through the surface) on the SLL field and on the SIREN field. Also writes the
README's query pictures to docs/images/ (``--pictures-only``: just those).
Results: benchmarks/results/query.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from benchmarks.provenance import provenance
from lipsdf.field import NeuralField
from lipsdf.query import contour, orbit_camera, sample_surface, skeleton, trace_image
from lipsdf.query.trace import shape_framing
from lipsdf.render import save_image, shade

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "images"
CACHE = ROOT / "out" / "bench"
IMAGE_SIZE = 512


def lipsdf(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "lipsdf", *args, "-q"], check=True)


def trained_fields() -> dict[str, Path]:
    """The bunny fields, trained with the CLI unless cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    bunny = str(DATA / "meshes" / "stanford-bunny.obj")
    fields = {"sll": CACHE / "bunny_fit.pt", "siren": CACHE / "bunny_siren_lr5e-4.pt"}
    if not fields["sll"].exists():
        lipsdf("fit", bunny, "-o", str(CACHE / "bunny_fit"))
        shutil.copyfile(CACHE / "bunny_fit" / "stanford-bunny.pt", fields["sll"])
    if not fields["siren"].exists():
        lipsdf("sample", bunny, "--mode", "dist", "-n", "200000", "-o", str(CACHE / "bunny_dist.npz"))
        # lr 5e-4, as benchmarks.quality trains SIREN: at TrainingConfig's 5e-3 it does not converge
        lipsdf("train", str(CACHE / "bunny_dist.npz"), "--arch", "siren", "--epochs", "40", "--lr", "5e-4",
               "-o", str(fields["siren"]))
    return fields


def contouring(field: NeuralField, resolutions: list[int]) -> list[dict]:
    rows = []
    for resolution in resolutions:
        pruned = contour(field, 0.0, resolution=resolution)
        dense = contour(field, 0.0, resolution=resolution, dense=True)
        a, b = pruned.contours[0].shape, dense.contours[0].shape
        same_shape = a.vertices.shape == b.vertices.shape and np.array_equal(a.faces, b.faces)
        row = {
            "resolution": resolution,
            "dense_evaluations": dense.evaluations, "dense_seconds": round(dense.seconds, 2),
            "pruned_evaluations": pruned.evaluations, "pruned_seconds": round(pruned.seconds, 2),
            "fewer_evaluations": round(dense.evaluations / pruned.evaluations, 1),
            "less_time": round(dense.seconds / pruned.seconds, 1),
            "triangles": len(a.faces),
            "identical_faces": bool(same_shape),
            "max_vertex_difference": float(np.abs(a.vertices - b.vertices).max()) if same_shape else None,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def tracing(field: NeuralField, camera, name: str) -> dict:
    result = trace_image(field, camera)
    save_image(shade(result, camera), IMAGES / f"query_render_{name}.png")
    row = {
        "field": name, "rays": int(result.hit.size), "hit_fraction": round(float(result.hit.mean()), 4),
        "mean_steps": round(result.mean_steps, 2), "max_steps": int(result.steps.max()),
        "mean_steps_hits": round(float(result.steps[result.hit].mean()), 2),
        "rays_per_second": round(result.rays_per_second), "seconds": round(result.seconds, 2),
        "stepped_through": int(result.stepped_through.sum()), "unfinished": result.unfinished,
    }
    print(json.dumps(row), flush=True)
    return row


def point_pictures(field: NeuralField) -> None:
    """docs/images/query_bunny_points.png: surface samples and skeleton of the SLL field, two views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    surface = sample_surface(field, 4000).points
    axis = skeleton(field, resolution=128)
    fig = plt.figure(figsize=(10, 5), layout="constrained")
    for k, (points, title) in enumerate(((surface, "sample-surface: 4000 points"),
                                         (axis.points, f"skeleton: {len(axis.points)} points, coloured by radius"))):
        ax = fig.add_subplot(1, 2, k + 1, projection="3d")
        colour = {"c": "0.45"} if k == 0 else {"c": axis.radii, "cmap": "viridis"}
        ax.scatter(points[:, 0], points[:, 2], points[:, 1], s=0.6, linewidths=0, **colour)
        ax.view_init(elev=15, azim=-60)
        ax.set_title(title)
        ax.set_axis_off()
        ax.set_aspect("equal")
    fig.savefig(IMAGES / "query_bunny_points.png", dpi=80)
    plt.close(fig)


def write_results(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if results["device"] == "cpu" else f"_{results['device']}"
    (RESULTS / f"query{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Query benchmark", "",
             f"Machine: {results['machine']}, device {results['device']}. Run: `{results['command']}` at commit "
             f"{results['commit']} on {results['date']}. Fields: {results['fields']}.", "",
             *([f"Contouring rows from `{results['contouring_run']['command']}` at commit "
                f"{results['contouring_run']['commit']} on {results['contouring_run']['date']}.", ""]
               if "contouring_run" in results else []),
             "## Marching cubes of the zero level: dense grid vs Lipschitz-pruned (same run)", "",
             "| resolution | dense evaluations | dense s | pruned evaluations | pruned s | fewer evaluations "
             "| less time | triangles | identical output |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["contouring"]:
        same = (f"yes (vertices within {r['max_vertex_difference']:.1e})" if r["identical_faces"] else "no")
        lines.append(f"| {r['resolution']} | {r['dense_evaluations']:,} | {r['dense_seconds']} | "
                     f"{r['pruned_evaluations']:,} | {r['pruned_seconds']} | {r['fewer_evaluations']}x | "
                     f"{r['less_time']}x | {r['triangles']:,} | {same} |")
    lines += ["", f"## Sphere tracing, {IMAGE_SIZE} x {IMAGE_SIZE}, default view", "",
              "| field | hit | steps per ray | steps per hit ray | max steps | rays/s | stepped through | unfinished |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["tracing"]:
        lines.append(f"| {r['field']} | {100 * r['hit_fraction']:.1f}% | {r['mean_steps']} | {r['mean_steps_hits']} | "
                     f"{r['max_steps']} | {r['rays_per_second']:,} | {r['stepped_through']:,} | {r['unfinished']} |")
    (RESULTS / f"query{suffix}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--pictures-only", action="store_true", help="only write the README's pictures")
    parser.add_argument("--tracing-only", action="store_true",
                        help="re-run only the sphere-tracing rows, keeping the committed contouring rows")
    args = parser.parse_args()
    paths = trained_fields()
    sll = NeuralField.load(paths["sll"], device=args.device)
    IMAGES.mkdir(parents=True, exist_ok=True)
    point_pictures(sll)
    if args.pictures_only:
        return
    siren = NeuralField.load(paths["siren"], device=args.device)
    results = {
        **provenance(), "device": args.device,
        "fields": f"lipsdf fit's default field ({sll.arch.upper()} {sll.model_config['layers']} x "
                  f"{sll.model_config['width']}, {sll.summary['epochs']} epochs) and SIREN 5 x 256 (distance fit, 40 epochs, lr 5e-4) on the bunny",
    }
    centre, radius = shape_framing(sll)
    camera = orbit_camera(centre, radius, width=IMAGE_SIZE, height=IMAGE_SIZE)
    results["tracing"] = [tracing(sll, camera, "sll"), tracing(siren, camera, "siren")]
    if args.tracing_only:
        kept = json.loads((RESULTS / "query.json").read_text())
        results["contouring"], results["contouring_run"] = kept["contouring"], kept.get("contouring_run", {
            key: kept.get(key) for key in ("command", "commit", "date")})
    else:
        results["contouring"] = contouring(sll, args.resolutions)
    write_results(results)


if __name__ == "__main__":
    main()
