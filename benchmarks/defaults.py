"""`lipsdf fit` with its defaults on the shared shapes: the accuracy targets, measured as a user would run it.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.defaults [NAME ...]    # or --table: rewrite the table from defaults.json

Each case is one `lipsdf fit` command with default settings (only the mode, ``--quick`` or ``--time`` where
the case says so), run as a user runs it, in a new process on this machine's CPU, and timed from outside
(wall clock, imports included): the time the user waits, against the fit's budget. Every result is kept
in benchmarks/results/defaults.json (a later run of some cases replaces only those), and the table is
written to benchmarks/results/defaults.md; the bunny's and France's pictures go to docs/images, and the
bunny's field to out/bench/ for ``benchmarks.query``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from benchmarks.provenance import provenance
from lipsdf.field import NeuralField

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
    "armadillo": (DATA / "meshes" / "armadillo.obj", {}),
    "max-planck": (DATA / "meshes" / "max-planck.obj", {}),
    "bunny scan (point cloud)": (DATA / "pointclouds" / "bunny_scan_points.xyz", {}),
}


# cases whose picture the docs show: case -> file in docs/images
PICTURES = {"bunny": "fit_bunny.png", "france": "fit_france.png"}


FIELDS = {"bunny": ROOT / "out" / "bench" / "bunny_fit.pt"}  # cases whose field benchmarks.query measures


def run_case(name: str) -> dict:
    path, options = CASES[name]
    picture = ROOT / "docs" / "images" / PICTURES[name] if name in PICTURES else None
    return measure_fit(path, options, picture=picture, field=FIELDS.get(name))


def measure_fit(path: Path, options: dict, picture: Optional[Path] = None, field: Optional[Path] = None) -> dict:
    """One `lipsdf fit` of ``path`` with ``options`` (``quick``, ``mode``, ``time``, ``reference``: the
    command's flags; and ``training``: flags of training fields) into a scratch folder, as a new process:
    its row (wall seconds, the fit's own stage times, the budget and epochs it chose, settings, metrics,
    and its learning curve). Its picture is copied to ``picture`` and its field to ``field`` when given."""
    command = [sys.executable, "-m", "lipsdf", "fit", str(path), "-q"] + ["--quick"] * bool(options.get("quick"))
    for key in ("mode", "time", "reference"):
        if key in options:
            command += [f"--{key}", str(options[key])]
    for key, value in options.get("training", {}).items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run(command + ["-o", folder], check=True)
        wall = time.perf_counter() - started
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
        files = {role: Path(folder) / name for role, name in metrics["files"].items()}
        if picture is not None:
            shutil.copyfile(files["picture"], picture)
        if field is not None:
            field.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files["field"], field)
        summary = NeuralField.load(files["field"]).summary
        curve = learning_curve(files["log"])
    surface = metrics["surface"] or {}
    near = metrics["distance"].get("near", {})
    budget = metrics["settings"].get("budget") or {}
    return {"wall_seconds": round(wall, 1), "seconds": metrics["seconds"], "budget_seconds": budget.get("seconds"),
            "planned_train_seconds": budget.get("train_seconds"), "loss": summary["loss"],
            "model": {k: metrics["settings"]["model"][k] for k in ("arch", "layers", "width")},
            "epochs": metrics["settings"]["training"]["epochs"], "trained_epochs": summary["epochs"],
            "stopped": summary.get("stopped"),
            "chamfer_l1_rel": surface.get("chamfer_l1_rel"), "hausdorff_rel": surface.get("hausdorff_rel"),
            "normal_consistency": surface.get("normal_consistency"),
            "mae_uniform_rel": metrics["distance"]["uniform"]["mae_rel"], "mae_near_rel": near.get("mae_rel"),
            "sign_accuracy_near": near.get("sign_accuracy"),
            "gradient_norm_median": metrics["gradient_norm"]["median"],
            "max_pair_ratio": metrics["lipschitz"]["max_ratio"], "curve": curve, **provenance()}


def learning_curve(log: Path) -> list[list[float]]:
    """``[training seconds, test MAE (of the diagonal)]`` after each epoch, from a fit's ``.jsonl`` log."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [[record["seconds"], record.get("mae_rel", record["mae"])] for record in records]


def epochs_trained(row: dict) -> str:
    """A fit row's epochs in words: those planned, or those trained of them where the deadline stopped it.

    >>> epochs_trained({"epochs": 9}), epochs_trained({"epochs": 9, "trained_epochs": 7})
    ('9', '7 of 9 (stopped at the deadline)')
    """
    if row.get("trained_epochs", row["epochs"]) == row["epochs"]:
        return str(row["epochs"])
    return f"{row['trained_epochs']} of {row['epochs']} (stopped at the deadline)"


def percent(value, digits: int) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def write(rows: dict) -> None:
    (RESULTS / "defaults.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    lines = ["# `lipsdf fit` with its defaults", "",
             "`python -m benchmarks.defaults`, on a 2-core CPU (each row names its machine, command's commit and "
             "date). Wall: the `lipsdf fit` command timed from outside, imports included, against its budget; "
             "planned: the training seconds the budget left, from the measured step; train: what training took; "
             "epochs: those planned (and those trained, where the machine ran slower than measured and training "
             "stopped at the budget's deadline). "
             "Lengths are % of the shape's bounding-box diagonal; near = within a few % of the diagonal of the "
             "surface. Unsigned rows have no sign. Native bf16: whether the CPU had bfloat16 products in hardware "
             "(the recipes then train 3/4 of the steps in bfloat16, and a budget buys more epochs).", "",
             "| shape | loss | budget | wall s | planned train s | train s | epochs | Chamfer L1 | Hausdorff | "
             "normal cons. | MAE uniform | sign acc. near | grad norm median | largest pair ratio | native bf16 | "
             "commit, date |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, r in rows.items():
        nc = "-" if r["normal_consistency"] is None else f"{r['normal_consistency']:.4f}"
        budget = "-" if r.get("budget_seconds") is None else f"{r['budget_seconds']:.0f} s"
        wall = f"{r['wall_seconds']:.0f}" if "wall_seconds" in r else f"({r['seconds']['total']:.0f})"
        planned = "-" if r.get("planned_train_seconds") is None else f"{r['planned_train_seconds']:.0f}"
        machine = r.get("machine", "")
        bf16 = "no" if "no native bfloat16" in machine else "yes" if "native bfloat16" in machine else "?"
        epochs = epochs_trained(r)
        lines.append(f"| {name} | {r['loss']} | {budget} | {wall} | {planned} | {r['seconds']['train']:.0f} | "
                     f"{epochs} | {percent(r['chamfer_l1_rel'], 3)} | {percent(r['hausdorff_rel'], 2)} | {nc} | "
                     f"{percent(r['mae_uniform_rel'], 2)} | {percent(r['sign_accuracy_near'], 1)} | "
                     f"{r['gradient_norm_median']:.2f} | {r['max_pair_ratio']:.4f} | {bf16} | "
                     f"{r.get('commit', 'before the budget')}, {r.get('date', '-')} |")
    (RESULTS / "defaults.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
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
