"""Robustness: the fuzz suite's long mode (hostile files), and messy meshes fitted end to end (--messy).

Run by hand (not part of the tests):

    .venv/bin/python -m benchmarks.robustness [--cases-per-mutation 1000]
    .venv/bin/python -m benchmarks.robustness --messy [--subdivisions 5]

Every (format, mutation, seed) case is built and judged by benchmarks/fuzzing.py, as in `make test`
(which runs a sample of them): loading must give a valid result or one LipsdfError line, within
10 s and 256 MiB. Writes benchmarks/results/robustness.json and robustness.md.

``--messy`` takes every shape of benchmarks/messy.py: the dataset's signs away from the surface against
the analytic inside, and `lipsdf fit --quick`'s sign accuracy on uniform points (or its one-line refusal
where no inside is defined); then an inverted copy of the shared spot mesh fitted like the original.
Writes benchmarks/results/messy.json and messy.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import fuzzing, messy
from benchmarks.provenance import provenance
from lipsdf.field import NeuralField
from lipsdf.geometry import GroundTruth, TriangleMesh, load_shape, save_shape
from lipsdf.metrics import bounding_box_diagonal
from lipsdf.sampling import sample

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases-per-mutation", type=int, default=1000)
    parser.add_argument("--messy", action="store_true", help="fit the messy meshes instead of fuzzing readers")
    parser.add_argument("--subdivisions", type=int, default=5, help="--messy: icosphere subdivisions")
    parser.add_argument("--inverted-only", action="store_true",
                        help="--messy: only re-run the inverted spot against the original (kept rows stay)")
    args = parser.parse_args()
    if args.messy:
        return messy_fits(args.subdivisions, args.inverted_only)
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp())
    seeds = fuzzing.seed_files(folder / "seeds")
    work = folder / "work"
    work.mkdir()
    rows, bugs, slowest = {}, [], None
    for fmt in seeds:
        counts: collections.Counter = collections.Counter()
        worst = (0.0, "")
        peak = 0
        for mutation in fuzzing.MUTATIONS:
            for seed in range(args.cases_per_mutation if mutation != "empty" else 1):
                path = fuzzing.mutated_case(seeds, fmt, mutation, seed, work)
                outcome = fuzzing.run_case(fmt, path)
                kind = "bug" if outcome.kind.startswith("bug") else outcome.kind
                counts[kind] += 1
                peak = max(peak, outcome.peak_bytes)
                if kind == "bug":
                    bugs.append({"format": fmt, "mutation": mutation, "seed": seed, "kind": outcome.kind,
                                 "message": outcome.message})
                if outcome.seconds > worst[0]:
                    worst = (outcome.seconds, f"{mutation} seed {seed}")
                if slowest is None or outcome.seconds > slowest["seconds"]:
                    slowest = {"format": fmt, "mutation": mutation, "seed": seed, "seconds": outcome.seconds,
                               "outcome": outcome.kind}
        rows[fmt] = {"cases": sum(counts.values()), "valid": counts["valid"], "error": counts["error"],
                     "bug": counts["bug"], "slowest_seconds": round(worst[0], 4), "slowest_case": worst[1],
                     "peak_mib": round(peak / 2 ** 20, 2)}
        print(fmt, rows[fmt], flush=True)
    result = {"machine": f"{platform.machine()}, torch {torch.__version__}, numpy {np.__version__}",
              "date": time.strftime("%Y-%m-%d"), "cases_per_mutation": args.cases_per_mutation,
              "mutations": list(fuzzing.MUTATIONS), "formats": rows, "bugs": bugs, "slowest": slowest,
              "seconds": round(time.perf_counter() - started, 1)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "robustness.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "robustness.md").write_text(_markdown(result))
    print(f"{sum(r['cases'] for r in rows.values())} cases, {len(bugs)} bugs, {result['seconds']} s")


def _fit(path: Path, folder: Path, options: list[str]) -> tuple[int, str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lipsdf", "fit", str(path), "-o", str(folder), "-q", *options],
                          capture_output=True, text=True)
    return done.returncode, (done.stdout + done.stderr).strip(), time.perf_counter() - started


def _uniform_sign_accuracy(shape: messy.MessyShape, field_path: Path, n: int = 100_000) -> float:
    field = NeuralField.load(field_path)
    low, high = shape.mesh.bounds()
    middle, half = (low + high) / 2, (high - low) / 2 * 1.2
    points = np.random.default_rng(1).uniform(middle - half, middle + half, size=(n, 3))
    return shape.agreement(points, field(points) < 0)


def messy_fits(subdivisions: int, inverted_only: bool = False) -> None:
    """Each messy shape sampled and fitted (--quick); an inverted copy of spot fitted like the original."""
    with tempfile.TemporaryDirectory() as scratch:
        _messy_fits(subdivisions, inverted_only, Path(scratch))


def _messy_fits(subdivisions: int, inverted_only: bool, folder: Path) -> None:
    rows = json.loads((RESULTS / "messy.json").read_text())["rows"] if inverted_only else []
    for shape in [] if inverted_only else messy.messy_shapes(subdivisions):
        path = folder / f"{shape.name.replace(' ', '_').replace(',', '').replace(':', '')}.obj"
        save_shape(shape.mesh, path)
        row = {"shape": shape.name, "triangles": len(shape.mesh.faces)}
        if shape.inside is not None:
            data = sample(shape.mesh, "signed", n=200_000, seed=0)
            points = data.world("points")
            away = GroundTruth(shape.mesh).unsigned_distance(points) > 0.01 * bounding_box_diagonal(shape.mesh.vertices)
            row["dataset_sign_agreement"] = shape.agreement(points[away], data.arrays["labels"][away] < 0)
            row["diagnosis"] = data.metadata["diagnosis"]["lines"]
        code, output, seconds = _fit(path, folder / path.stem, ["--quick"])
        row.update(exit_status=code, fit_seconds=round(seconds, 1), said=output.splitlines()[-1] if code else "")
        if code == 0 and shape.inside is not None:
            row["fit_uniform_sign_accuracy"] = _uniform_sign_accuracy(shape, folder / path.stem / f"{path.stem}.pt")
        print(row, flush=True)
        rows.append(row)
    inverted = _inverted_copy_fits(folder)
    result = {"rows": rows, "inverted_spot": inverted, "subdivisions": subdivisions, **provenance()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "messy.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "messy.md").write_text(_messy_markdown(result))


INVERTED_EPOCHS = 100


def _inverted_copy_fits(folder: Path) -> dict:
    spot = load_shape(DATA / "meshes" / "spot.obj")
    save_shape(TriangleMesh(spot.vertices, spot.faces[:, ::-1]), folder / "spot_inverted.obj")
    save_shape(spot, folder / "spot.obj")
    found = {}
    for name in ("spot", "spot_inverted"):
        # the same epochs for both (a budget would size each by its own timing of the step)
        code, output, seconds = _fit(folder / f"{name}.obj", folder / name,
                                     ["--quick", "--epochs", str(INVERTED_EPOCHS), "--seed", "0"])
        metrics = json.loads((folder / name / "metrics.json").read_text())
        found[name] = {"exit_status": code, "seconds": round(seconds, 1),
                       "chamfer_l1_rel": metrics["surface"]["chamfer_l1_rel"],
                       "normal_consistency": metrics["surface"]["normal_consistency"],
                       "sign_accuracy_uniform": metrics["distance"]["uniform"]["sign_accuracy"],
                       "diagnosis": metrics["diagnosis"]["lines"]}
        print(name, found[name], flush=True)
    return found


def _messy_markdown(result: dict) -> str:
    lines = ["# Messy meshes: signs, fits and refusals", "",
             f"`{result['command']}` at {result['commit']}, {result['machine']}, {result['date']}. Shapes from "
             f"`benchmarks/messy.py` (icospheres of {result['subdivisions']} subdivisions). Dataset signs: the "
             "share of the 200,000 training points farther than 1% of the diagonal from the surface whose label "
             "matches the analytic inside; fit: `lipsdf fit --quick`, the share of 100,000 uniform points in "
             "the box whose field sign matches it.", "",
             "| shape | triangles | dataset signs | fit's signs, uniform | fit s | what lipsdf said |", "|---|---:|---:|---:|---:|---|"]
    for row in result["rows"]:
        said = "; ".join(row.get("diagnosis", [])[1:]) if not row["exit_status"] else f"exit {row['exit_status']}: {row['said']}"
        agree = f"{100 * row['dataset_sign_agreement']:.2f}%" if "dataset_sign_agreement" in row else "-"
        fitted = f"{100 * row['fit_uniform_sign_accuracy']:.2f}%" if "fit_uniform_sign_accuracy" in row else "-"
        lines.append(f"| {row['shape']} | {row['triangles']:,} | {agree} | {fitted} | {row['fit_seconds']} | {said} |")
    lines += ["", f"Spot and an inverted copy of it (every face reversed), `lipsdf fit --quick --epochs {INVERTED_EPOCHS} "
              "--seed 0`:", "",
              "| mesh | Chamfer L1 | normal cons. | sign acc. uniform | s | orientation |", "|---|---:|---:|---:|---:|---|"]
    for name, row in result["inverted_spot"].items():
        lines.append(f"| {name} | {100 * row['chamfer_l1_rel']:.4f}% | {row['normal_consistency']:.4f} | "
                     f"{100 * row['sign_accuracy_uniform']:.2f}% | {row['seconds']} | {row['diagnosis'][-1]} |")
    return "\n".join(lines) + "\n"


def _markdown(result: dict) -> str:
    lines = ["# Robustness: the fuzz suite's long mode", "",
             f"{result['machine']}; run on {result['date']}; {result['cases_per_mutation']} seeded cases per "
             f"(format, mutation) (one for `empty`), mutations: {', '.join(result['mutations'])}; "
             f"{result['seconds']} s in all.", "",
             "Each case must end in a valid result or one `LipsdfError` line, within 10 s and 256 MiB "
             "(numpy and Python allocations as tracemalloc sees them, and growth of the process's peak resident "
             "memory for what it does not see, such as torch's). Peak MiB below is the traced part.", "",
             "| format | cases | valid | one-line error | bug | slowest case | its seconds | peak MiB |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for fmt, row in result["formats"].items():
        lines.append(f"| {fmt} | {row['cases']} | {row['valid']} | {row['error']} | {row['bug']} | "
                     f"{row['slowest_case']} | {row['slowest_seconds']:.4f} | {row['peak_mib']} |")
    slowest = result["slowest"]
    lines += ["", f"Slowest case overall: {slowest['format']}, {slowest['mutation']} seed {slowest['seed']}, "
                  f"{slowest['seconds']:.3f} s ({slowest['outcome']}).", ""]
    if result["bugs"]:
        lines += ["Bugs:", ""] + [f"- {b['format']} {b['mutation']} seed {b['seed']}: {b['kind']}: "
                                  f"{b['message']}" for b in result["bugs"]]
    else:
        lines.append("No bugs: every case ended in a valid result or one clear error.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
