"""`lipsdf fit` with its defaults on the shared shapes: the accuracy targets, measured as a user would run it.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python benchmarks/defaults.py [NAME ...]    # or --table: rewrite the table from defaults.json

Each case is one `lipsdf fit` call with default settings (only the mode or ``--quick`` where the case says
so), on this machine's CPU. Every result is kept in benchmarks/results/defaults.json (a later run of some
cases replaces only those), and the table is written to benchmarks/results/defaults.md; the bunny's and
France's pictures go to docs/images.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from lipsdf.pipeline import fit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"

CASES = {
    "france": (DATA / "polylines2d" / "fra.obj", {}),
    "bunny --quick": (DATA / "meshes" / "stanford-bunny.obj", {"quick": True}),
    "france --quick": (DATA / "polylines2d" / "fra.obj", {"quick": True}),
    "bunny": (DATA / "meshes" / "stanford-bunny.obj", {}),
    "fandisk features (3D polyline)": (DATA / "polylines3d" / "fandisk_features.obj", {}),
    "suzanne --mode unsigned": (DATA / "meshes" / "suzanne.obj", {"mode": "unsigned"}),
    "fandisk": (DATA / "meshes" / "fandisk.obj", {}),
    "spot": (DATA / "meshes" / "spot.obj", {}),
    "bunny scan (point cloud)": (DATA / "pointclouds" / "bunny_scan_points.xyz", {}),
}


# cases whose picture the docs show: case -> file in docs/images
PICTURES = {"bunny": "fit_bunny.png", "france": "fit_france.png"}


def run_case(name: str) -> dict:
    path, options = CASES[name]
    return measure_fit(path, options, picture=ROOT / "docs" / "images" / PICTURES[name] if name in PICTURES else None)


def measure_fit(path: Path, options: dict, picture: Optional[Path] = None) -> dict:
    """One `lipsdf fit` of ``path`` with ``options`` into a scratch folder: its row (times, settings, metrics);
    its picture copied to ``picture`` when given."""
    with tempfile.TemporaryDirectory() as folder:
        result = fit(path, folder, **options)
        if picture is not None:
            shutil.copyfile(result.files["picture"], picture)
    metrics = result.to_dict()
    surface = metrics["surface"] or {}
    near = metrics["distance"].get("near", {})
    return {"seconds": metrics["seconds"], "loss": result.field.summary["loss"],
            "model": {k: metrics["settings"]["model"][k] for k in ("arch", "layers", "width")},
            "epochs": metrics["settings"]["training"]["epochs"],
            "chamfer_l1_rel": surface.get("chamfer_l1_rel"), "hausdorff_rel": surface.get("hausdorff_rel"),
            "normal_consistency": surface.get("normal_consistency"),
            "mae_uniform_rel": metrics["distance"]["uniform"]["mae_rel"], "mae_near_rel": near.get("mae_rel"),
            "sign_accuracy_near": near.get("sign_accuracy"),
            "gradient_norm_median": metrics["gradient_norm"]["median"],
            "max_pair_ratio": metrics["lipschitz"]["max_ratio"], "date": time.strftime("%Y-%m-%d")}


def percent(value, digits: int) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def write(rows: dict) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU"
    (RESULTS / "defaults.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    lines = ["# `lipsdf fit` with its defaults", "",
             f"{machine}. `python benchmarks/defaults.py`. Lengths are % of the shape's bounding-box diagonal; "
             "near = within a few % of the diagonal of the surface. Unsigned rows have no sign. The machine's speed "
             "varies between days (on 2026-12-01 it ran about 1.9x slower than on 2026-11-28).", "",
             "| shape | loss | epochs | total s | train s | Chamfer L1 | Hausdorff | normal cons. | MAE uniform | "
             "sign acc. near | grad norm median | largest pair ratio | date |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in rows.items():
        nc = "-" if r["normal_consistency"] is None else f"{r['normal_consistency']:.4f}"
        lines.append(f"| {name} | {r['loss']} | {r['epochs']} | {r['seconds']['total']:.0f} | "
                     f"{r['seconds']['train']:.0f} | {percent(r['chamfer_l1_rel'], 3)} | "
                     f"{percent(r['hausdorff_rel'], 2)} | {nc} | {percent(r['mae_uniform_rel'], 2)} | "
                     f"{percent(r['sign_accuracy_near'], 1)} | {r['gradient_norm_median']:.2f} | "
                     f"{r['max_pair_ratio']:.4f} | {r.get('date', '-')} |")
    (RESULTS / "defaults.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    if sys.argv[1:] == ["--table"]:  # rewrite the table from the stored rows
        write(json.loads((RESULTS / "defaults.json").read_text())["rows"])
        return
    names = sys.argv[1:] or list(CASES)
    unknown = set(names) - set(CASES)
    if unknown:
        sys.exit(f"unknown cases {sorted(unknown)}; choose from {list(CASES)}")
    stored = RESULTS / "defaults.json"
    rows = json.loads(stored.read_text())["rows"] if stored.exists() else {}
    for name in names:
        rows[name] = run_case(name)
        print(name, json.dumps(rows[name]), flush=True)
        write({key: rows[key] for key in CASES if key in rows})


if __name__ == "__main__":
    main()
