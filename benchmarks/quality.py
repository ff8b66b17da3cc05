"""Quality benchmark: lipsdf's 1-Lipschitz fields against the classic baselines, same time budget.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.quality [--budget-3d SECONDS] [--budget-2d SECONDS] [--shapes NAME ...]

For each shape (bunny, spot, fandisk, suzanne, the detailed armadillo and
max-planck, the outlines of France and Japan, the fandisk's feature lines (a
3D polyline) and the raw bunny scan (a point cloud)), the contenders train for
the same wall-clock budget:

* ``ours``: ``lipsdf fit``'s own CPU defaults for the shape's dimension
  (:func:`lipsdf.pipeline.recipes.recipe_for`: its training points, sampling,
  batch size, network (SLL 20 x 64; 20 x 48 for outlines), optimiser (Muon
  for the weight matrices but of 2D unsigned fields, Adam for the rest), learning rate
  and Adam's beta2 (lr 5e-3 and 0.999 for meshes, 1e-2 and 0.95 for
  outlines), and bfloat16 steps for the first 3/4 of training where the CPU has them
  natively), trained for the budget instead
  of fit's epochs: ``fit-hinge`` on a ``signed`` dataset with exact
  distances (hKR on the point cloud, which has none), shifted to be zero on
  the surface samples; ``unsigned`` on the feature lines; on suzanne, which
  is open, also on an ``unsigned`` dataset (``ours_unsigned``);
* ``ours_paper``: the paper's setting, SLL 20 x 128, hKR, ``--recipe paper``
  (lr 5e-4, constant margin);
* ``mlp``: softplus MLP 8 x 256 fitted to exact distances (``dist``) with an
  eikonal term (L1 fit + 0.1 eikonal), lr 5e-4;
* ``siren``: SIREN 5 x 256, same loss on the same data, lr 5e-4;
* ``sald``: geometric-init MLP 8 x 256, SALD loss on ``sal`` data (unsigned
  distances near the surface, and surface normals), lr 5e-4.

The baselines need exact distances, so they are not run on the point cloud
(SALD is: it needs unsigned distances only, here to the points). The
baselines and the paper recipe train on 100k points at batch 4096, Adam.
The number of epochs that fits the budget is measured first, as
``lipsdf fit --time`` does it (the step timed on the contender's own
dataset), since the learning-rate and margin schedules need the length up
front; each row reports the seconds it trained. Then every field goes
through ``lipsdf eval`` against the input shape with the default
evaluation settings. Writes
benchmarks/results/quality.json and quality.md.

``--scans`` runs instead the scan rows of :mod:`benchmarks.scans`: ``lipsdf fit``'s default fit of a
point cloud (a whole fit, in its own time budget) against Open3D's Screened Poisson on the same points,
both measured against the true surface; they are merged into the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks.defaults import epochs_trained
from lipsdf.dataset import PointDataset
from lipsdf.evaluate import EvaluationConfig, evaluate_field
from lipsdf.geometry.io import load_shape
from lipsdf.pipeline.budget import PROBE_SECONDS
from lipsdf.pipeline.recipes import recipe_for
from lipsdf.sampling import sample
from lipsdf.training import Trainer, TrainingConfig, model_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
SHAPES = {
    "bunny": "meshes/stanford-bunny.obj",
    "spot": "meshes/spot.obj",
    "fandisk": "meshes/fandisk.obj",
    "suzanne": "meshes/suzanne.obj",
    "armadillo": "meshes/armadillo.obj",
    "max_planck": "meshes/max-planck.obj",
    "france": "polylines2d/fra.obj",
    "japan": "polylines2d/jpn.obj",
    "fandisk_features": "polylines3d/fandisk_features.obj",
    "bunny_scan": "pointclouds/bunny_scan_points.xyz",
}
# contender -> (dataset mode, model overrides, training overrides); FIT: lipsdf fit's defaults (see settings)
FIT = None
CONTENDERS = {
    "ours": ("signed", FIT, FIT),
    "ours_paper": ("signed", {"arch": "sll", "width": 128}, {"loss": "hkr", "recipe": "paper"}),
    "ours_unsigned": ("unsigned", FIT, FIT),
    "mlp": ("dist", {"arch": "mlp"}, {"lr": 5e-4}),
    "siren": ("dist", {"arch": "siren"}, {"lr": 5e-4}),
    "sald": ("sal", {"arch": "mlp"}, {"lr": 5e-4}),
}
# Open surfaces, where an unsigned field is the natural fit (the signed one relies on the winding number's
# guess of an inside); both are measured there.
OPEN = {"suzanne"}
TEST_POINTS = 20_000


def settings(contender: str, shape, n: int) -> tuple[str, dict, dict, dict]:
    """``(mode, sampling, model overrides, training overrides)`` of a contender on ``shape``: for ours,
    ``lipsdf fit``'s CPU defaults for that shape and mode (all but their epochs, which the budget sets);
    for the others ``n`` points and their own settings."""
    mode, model, training = CONTENDERS[contender]
    if mode == "signed" and not shape.has_inside:  # the feature lines: unsigned is the only field
        mode = "unsigned"
    if model is FIT:
        defaults = recipe_for(shape.dim, device="cpu", signed=mode == "signed" and shape.kind != "pointcloud")
        training = {key: value for key, value in defaults.training.items() if key not in ("epochs", "checkpoint_every")}
        return mode, {**defaults.sampling, "n_test": TEST_POINTS}, {"arch": "sll", **defaults.model}, training
    return mode, {"n": n, "n_test": TEST_POINTS}, model, training


def epochs_for_budget(dataset: PointDataset, model: dict, budget: float, training: dict) -> int:
    """Epochs of ``dataset`` that fit in ``budget`` seconds of training, by the mechanism ``lipsdf fit --time``
    uses: the step and the epoch's end timed on the dataset itself (:meth:`lipsdf.training.Trainer.step_cost`;
    under ``bf16`` precision both kinds of step)."""
    config = TrainingConfig(epochs=1, checkpoint_every=0, **training)
    trainer = Trainer(dataset, model, config)
    return trainer.step_cost(PROBE_SECONDS).epochs_within(budget, trainer.steps_per_epoch)


def run_shape(name: str, budget: float, n: int, contenders: list[str], epochs_given: dict[str, int]) -> dict:
    shape = load_shape(DATA / SHAPES[name])
    out = {"budget_seconds": budget, "contenders": {}}
    datasets: dict[tuple[str, str], PointDataset] = {}
    for contender in contenders:
        mode, sampling, overrides, training = settings(contender, shape, n)
        if (contender == "ours_unsigned" and name not in OPEN) or (mode == "dist" and shape.kind == "pointcloud"):
            continue
        key = (mode, json.dumps(sampling, sort_keys=True))
        if key not in datasets:
            started = time.perf_counter()
            datasets[key] = sample(shape, mode, seed=0, **sampling)
            print(f"{name}: sampled {mode} ({sampling['n']} points) in {time.perf_counter() - started:.1f} s",
                  flush=True)
        dataset = datasets[key]
        model = model_config(dataset.mode, dataset.dim, **overrides)
        arch = model["arch"]
        epochs = epochs_given.get(contender) or epochs_for_budget(dataset, model, budget, training)
        started = time.perf_counter()
        field = Trainer(dataset, model, TrainingConfig(epochs=epochs, checkpoint_every=0, seed=0, **training)).run()
        seconds = time.perf_counter() - started
        metrics = evaluate_field(field, shape, EvaluationConfig()).to_dict()
        out["contenders"][contender] = {"mode": mode, "model": model, "loss": field.summary.get("loss"),
                                        "epochs_given": contender in epochs_given,
                                        "sampling": sampling, "training": training, "epochs": epochs,
                                        "train_seconds": round(seconds, 1), "metrics": metrics,
                                        "date": time.strftime("%Y-%m-%d")}
        surface = metrics["surface"] or {}
        print(f"{name} {contender} ({mode}, {arch}, {epochs} epochs, {seconds:.0f} s): "
              f"MAE {100 * metrics['distance']['all']['mae_rel']:.3f}%, "
              f"Chamfer {100 * surface.get('chamfer_l1_rel', float('nan')):.3f}%, "
              f"ratio {metrics['lipschitz']['max_ratio']:.4f}", flush=True)
    return out


def _pct(value, digits: int = 3) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def write_results(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(results, indent=2))
    lines = ["# Quality: lipsdf's 1-Lipschitz fields against the baselines at the same time budget", "",
             f"{results['machine']}; budget {results['budget_3d']} s per contender in 3D, "
             f"{results['budget_2d']} s in 2D; the baselines and the paper recipe on {results['points']} training "
             "points at batch 4096, ours with `lipsdf fit`'s defaults (points and batch in the table); "
             f"first run on {results['date']}, rows re-run since on the date they give. Lengths are % of the "
             "shape's bounding-box diagonal; "
             "MAE and max over 20k uniform + 20k near-surface points; Chamfer/Hausdorff from exact distances "
             "between 100k samples of each surface (the contour on a 128^3 or 512^2 grid, and the input) and the "
             "other surface. A dash: no contour (the field has no zero level in its box) or no normals.", "",
             "| shape | contender | points | batch | epochs | train s | MAE | max err | sign acc | \\|f\\| > d | grad norm median "
             "(min-max) | max pair ratio | Chamfer L1 | Chamfer L2 (x1e-6 diag²) | Hausdorff | normal cons. | date |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    lines[4:4] = chamfer_matrix(results) + [""] + scan_table(results)
    for shape, entry in results["shapes"].items():
        for contender, row in entry["contenders"].items():
            m = row["metrics"]
            d = m["distance"]["all"]
            g = m["gradient_norm"]
            s = m["surface"] or {}
            consistency = s.get("normal_consistency")
            l2 = f"{1e6 * s['chamfer_l2_rel']:.2f}" if s else "—"
            lines.append(
                f"| {shape} | {contender} ({row['mode']}) | {row.get('sampling', {}).get('n', results['points'])} | "
                f"{row.get('training', {}).get('batch_size', 4096)} | {row['epochs']} | {row['train_seconds']} | "
                f"{_pct(d['mae_rel'])} | {_pct(d['max_error_rel'], 2)} | "
                f"{_pct(d.get('sign_accuracy'), 2) if 'sign_accuracy' in d else '—'} | "
                f"{_pct(m['overestimate_fraction'], 1)} | {g['median']:.3f} ({g['min']:.2f}-{g['max']:.2f}) | "
                f"{m['lipschitz']['max_ratio']:.5f} | {_pct(s.get('chamfer_l1_rel'))} | "
                f"{l2} | {_pct(s.get('hausdorff_rel'), 2)} | "
                f"{'—' if consistency is None else f'{consistency:.4f}'} | {row.get('date', results['date'])} |")
    (RESULTS / "quality.md").write_text("\n".join(lines) + "\n")


def scan_table(results: dict) -> list[str]:
    """Markdown lines: each scan's default fit against Screened Poisson, both against the true surface."""
    if not results.get("scans"):
        return []
    lines = ["Scans (`--scans`): `lipsdf fit SCAN --reference MESH` with its defaults, a whole fit as a new process, "
             "against Open3D's Screened Poisson (depth 9, 2% lowest-density vertices trimmed, normals estimated "
             "from 30 neighbours where the scan has none) on the same points; both measured against the true "
             "surface (100k samples of each surface, exact distances):", "",
             "| scan | points | normals | contender | seconds | epochs | Chamfer L1 | Hausdorff | normal cons. | "
             "ours / Poisson Chamfer | date |", "|---|---:|---|---|---:|---|---:|---:|---:|---:|---|"]
    for name, rows in results["scans"].items():
        ours, theirs = rows["ours"], rows["poisson"]
        ratio = ours["chamfer_l1_rel"] / theirs["surface"]["chamfer_l1_rel"]
        common = f"| {name} | {rows['points']} | {'given' if rows['normals'] else 'estimated'} |"
        lines.append(f"{common} ours | {ours['wall_seconds']:.0f} | {epochs_trained(ours)} | {_pct(ours['chamfer_l1_rel'], 4)} | "
                     f"{_pct(ours['hausdorff_rel'], 2)} | {ours['normal_consistency']:.4f} | {ratio:.2f}x | "
                     f"{ours['date']} |")
        surface = theirs["surface"]
        lines.append(f"{common} poisson | {theirs['seconds']:.1f} | - | {_pct(surface['chamfer_l1_rel'], 4)} | "
                     f"{_pct(surface['hausdorff_rel'], 2)} | {surface['normal_consistency']:.4f} | | "
                     f"{theirs['date']} |")
    return lines + [""]


def chamfer_matrix(results: dict) -> list[str]:
    """Markdown lines: each shape's Chamfer L1 per contender, and ours against SIREN's."""
    def chamfer(row):
        surface = row["metrics"]["surface"] or {}
        return surface.get("chamfer_l1_rel")

    lines = ["Chamfer L1 (% of the diagonal) at the same budget; the last column is ours divided by SIREN:", "",
             "| shape | " + " | ".join(CONTENDERS) + " | ours / siren |",
             "|---|" + "---:|" * (len(CONTENDERS) + 1)]
    for shape, entry in results["shapes"].items():
        rows = entry["contenders"]
        cells = [_pct(chamfer(rows[name])) if name in rows else "" for name in CONTENDERS]
        ours, siren = (chamfer(rows[name]) if name in rows else None for name in ("ours", "siren"))
        ratio = f"{ours / siren:.2f}x" if ours is not None and siren else "—"
        lines.append(f"| {shape} | " + " | ".join(cells) + f" | {ratio} |")
    return lines


def comparison(first: dict, second: dict) -> str:
    """Markdown table of the headline metrics of the runs in ``second`` next to the same runs in ``first``."""
    lines = ["# Quality benchmark: re-run against the committed run", "",
             f"committed run: {first['date']}; re-run: {second['date']}, same settings. The epochs come from a "
             "timing measured at the start of each run, so they can differ by one; with the same epochs, training "
             "on the CPU is deterministic and the numbers repeat exactly.", "",
             "| shape | contender | epochs | test MAE | Chamfer L1 | Hausdorff | largest pair ratio |",
             "|---|---|---|---|---|---|---|"]
    for shape, entry in second["shapes"].items():
        for contender, row in entry["contenders"].items():
            old = first["shapes"][shape]["contenders"][contender]
            a, b = old["metrics"], row["metrics"]
            cells = [f"{old['epochs']} / {row['epochs']}"]
            for get, fmt in ((lambda m: m["distance"]["all"]["mae_rel"], "{:.3%}"),
                             (lambda m: m["surface"]["chamfer_l1_rel"], "{:.3%}"),
                             (lambda m: m["surface"]["hausdorff_rel"], "{:.2%}"),
                             (lambda m: m["lipschitz"]["max_ratio"], "{:.4f}")):
                cells.append(f"{fmt.format(get(a))} / {fmt.format(get(b))}")
            lines.append(f"| {shape} | {contender} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-3d", type=float, default=90.0, help="training seconds per contender, 3D")
    parser.add_argument("--budget-2d", type=float, default=60.0, help="training seconds per contender, 2D")
    parser.add_argument("-n", type=int, default=100_000, help="training points per dataset")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument("--epochs", nargs="+", default=[], metavar="CONTENDER=N",
                        help="train these contenders for N epochs instead of the budget's estimate (to re-run one "
                             "at the time another actually trained)")
    parser.add_argument("--merge", action="store_true",
                        help="update benchmarks/results/quality.json with these shapes and contenders only")
    parser.add_argument("--scans", action="store_true",
                        help="run the scan rows (our default fit against Screened Poisson, needs open3d) into the "
                             "committed results")
    parser.add_argument("--output", default=None, help="write results here instead of benchmarks/results, with "
                                                       "a comparison against the committed run beside them")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"needs the shared data in {DATA}")
    try:
        epochs_given = {key: int(value) for key, value in (item.split("=") for item in args.epochs)}
    except ValueError:
        raise SystemExit("--epochs takes CONTENDER=N pairs, e.g. --epochs ours=33") from None
    torch.set_num_threads(os.cpu_count() or 1)
    if args.scans:
        from benchmarks.scans import SCANS, run_scan

        results = json.loads((RESULTS / "quality.json").read_text())
        for name in SCANS:
            results.setdefault("scans", {})[name] = run_scan(name)
            write_results(results)
        return
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                          f"torch {torch.__version__}, CPU",
               "date": time.strftime("%Y-%m-%d"), "budget_3d": args.budget_3d, "budget_2d": args.budget_2d,
               "points": args.n, "shapes": {}}
    if args.merge:
        results = json.loads((RESULTS / "quality.json").read_text())
    for name in args.shapes:
        dim = 2 if SHAPES[name].startswith("polylines2d") else 3
        measured = run_shape(name, args.budget_3d if dim == 3 else args.budget_2d, args.n, args.contenders,
                             epochs_given)
        entry = results["shapes"].setdefault(name, measured)
        entry["contenders"].update(measured["contenders"])
        entry["contenders"] = {k: entry["contenders"][k] for k in CONTENDERS if k in entry["contenders"]}
        if args.output is None:
            write_results(results)  # after every shape: a long run that stops early keeps what it measured
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
        committed = json.loads((RESULTS / "quality.json").read_text())
        Path(args.output).with_suffix(".md").write_text(comparison(committed, results))


if __name__ == "__main__":
    main()
