"""`lipsdf fit-many` on 8 shapes at --quick: 1 against 2 workers, the local engine against Ray.

Run by hand (not part of the tests); uses ../shared/data for two of the shapes:

    .venv/bin/python -m benchmarks.many

Each configuration is a fresh `lipsdf fit-many` process into a fresh folder, as a user would run it
(Ray's runs start their own local Ray instance, which is part of what Ray costs). Writes
benchmarks/results/many.json and many.md.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
SHAPES = ["builtin:circle", "builtin:rectangle", "builtin:flower", str(DATA / "polylines2d" / "fra.obj"),
          str(DATA / "polylines2d" / "jpn.obj"), "builtin:sphere", "builtin:torus", "builtin:box"]
CONFIGS = [("local", 1), ("local", 2), ("ray", 1), ("ray", 2)]


def run(engine: str, workers: int, folder: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lipsdf", "fit-many", *SHAPES, "-o", str(folder), "--quick",
                           "--workers", str(workers), "--engine", engine, "-q"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    rows = list(csv.DictReader(open(folder / "summary.csv")))
    return {"engine": engine, "workers": workers, "exit": done.returncode, "wall_seconds": round(wall, 1),
            "shape_seconds": round(sum(float(row["seconds"]) for row in rows), 1),
            "statuses": [row["status"] for row in rows],
            "chamfer_l1_rel": {row["name"]: row["chamfer_l1_rel"] for row in rows}, "stderr": done.stderr[-500:]}


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    if not DATA.is_dir():
        sys.exit(f"needs {DATA}")
    scratch = Path(tempfile.mkdtemp())
    results = []
    for engine, workers in CONFIGS:
        folder = scratch / f"{engine}-{workers}"
        results.append(run(engine, workers, folder))
        print(results[-1], flush=True)
        shutil.rmtree(folder)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU",
           "date": time.strftime("%Y-%m-%d"), "shapes": SHAPES, "runs": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "many.json").write_text(json.dumps(out, indent=2))
    (RESULTS / "many.md").write_text(markdown(out))


def markdown(out: dict) -> str:
    runs = {(r["engine"], r["workers"]): r for r in out["runs"]}
    lines = ["# `lipsdf fit-many`: workers and engines", "",
             f"{out['machine']}; run on {out['date']}; 8 shapes at `--quick` (3 built-in 2D, France and Japan, "
             "3 built-in 3D), each configuration a fresh `lipsdf fit-many` process into a fresh folder.", "",
             "| engine | workers | wall time | sum of the shapes' fit times | wall vs local, 1 worker |",
             "|---|---:|---:|---:|---:|"]
    base = runs[("local", 1)]["wall_seconds"]
    for (engine, workers), r in runs.items():
        lines.append(f"| {engine} | {workers} | {r['wall_seconds']:.1f} s | {r['shape_seconds']:.1f} s | "
                     f"{r['wall_seconds'] / base:.2f}x |")
    lines.append("")
    for workers in (1, 2):
        extra = runs[("ray", workers)]["wall_seconds"] - runs[("local", workers)]["wall_seconds"]
        lines.append(f"- Ray against the local pool, {workers} worker(s): {extra:+.1f} s in all, "
                     f"{extra / len(out['shapes']):+.2f} s per shape (Ray's start-up included).")
    same = all(runs[key]["chamfer_l1_rel"] == base_row for key in runs
               for base_row in [runs[("local", 1)]["chamfer_l1_rel"]])
    lines.append(f"- Every configuration gives the same metrics for every shape: {same}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
