"""First accuracy levers for issue 12, measured on the same runs: what the loss does at lipsdf fit's 2D budget.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python benchmarks/accuracy_levers.py

Every contender is SLL 20 x 128 (1-Lipschitz by construction) trained with `lipsdf fit`'s 2D defaults
(60k points, 40 epochs, batch 2048, lr 1e-3) on the France outline, and differs only in its loss:

* hkr: the default (inside/outside labels);
* dist-l1: L1 fit to the exact signed distance (no eikonal term: a 1-Lipschitz network needs none);
* dist-l1+hinge (lam): the L1 fit plus hKR's hinge on the distance's sign, ``lam relu(margin - y f)``,
  with the lipsdf recipe's margin and lambda schedules;
* dist-relative: ``|f - d| / (|d| + 0.01)``, an L1 fit that weighs the errors near the surface most;
* hkr, final margin 0.001: hKR whose margin shrinks to a tenth of its start instead of a quarter.

The fit+hinge and relative losses are experiments defined here, not (yet) lipsdf losses.

Writes benchmarks/results/accuracy_levers.json and .md.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from lipsdf.losses import LOSSES, Loss, distance_fit_loss
from lipsdf.pipeline import fit

ROOT = Path(__file__).resolve().parents[1]
SHAPE = ROOT.parent / "shared" / "data" / "polylines2d" / "fra.obj"
RESULTS = ROOT / "benchmarks" / "results"


def _fit_with_hinge(model, batch):
    values = model(batch.points)
    labels = torch.where(batch.targets < 0, -1.0, 1.0)
    return distance_fit_loss(values, batch.targets, "l1") + batch.lam * torch.relu(batch.margin - labels * values).mean()


def _relative_fit(model, batch):
    return ((model(batch.points) - batch.targets).abs() / (batch.targets.abs() + 0.01)).mean()


CONTENDERS = {
    "hkr": {"mode": "signed"},
    "dist-l1": {"mode": "dist", "training": {"loss": "fit", "eikonal": 0.0}},
    "dist-l1+hinge (lam 100)": {"mode": "dist", "training": {"loss": "fit_hinge", "lam": 100.0}},
    "dist-l1+hinge (lam 10)": {"mode": "dist", "training": {"loss": "fit_hinge", "lam": 10.0}},
    "dist-relative": {"mode": "dist", "training": {"loss": "fit_relative"}},
    "hkr, final margin 0.001": {"mode": "signed", "training": {"final_margin": 0.001}},
}


def main() -> None:
    LOSSES["fit_hinge"] = Loss(("dist",), _fit_with_hinge)
    LOSSES["fit_relative"] = Loss(("dist",), _relative_fit)
    rows = {}
    for name, options in CONTENDERS.items():
        with tempfile.TemporaryDirectory() as folder:
            metrics = fit(SHAPE, folder, **options).to_dict()
        surface = metrics["surface"] or {}
        rows[name] = {"train_seconds": metrics["seconds"]["train"], "chamfer_l1_rel": surface.get("chamfer_l1_rel"),
                      "hausdorff_rel": surface.get("hausdorff_rel"),
                      "normal_consistency": surface.get("normal_consistency"),
                      "mae_uniform_rel": metrics["distance"]["uniform"]["mae_rel"],
                      "mae_near_rel": metrics["distance"]["near"]["mae_rel"],
                      "sign_accuracy_near": metrics["distance"]["near"]["sign_accuracy"],
                      "gradient_norm_median": metrics["gradient_norm"]["median"],
                      "max_pair_ratio": metrics["lipschitz"]["max_ratio"]}
        print(name, rows[name], flush=True)
    out = {"machine": f"{platform.machine()}, torch {torch.__version__}, CPU", "date": time.strftime("%Y-%m-%d"),
           "shape": "France (polylines2d/fra.obj)", "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "accuracy_levers.json").write_text(json.dumps(out, indent=2))
    lines = ["# Accuracy levers: the loss, at `lipsdf fit`'s 2D budget (first measurements for issue 12)", "",
             f"{out['machine']}; run on {out['date']}; France outline; SLL 20 x 128, 60k points, 40 epochs, "
             "batch 2048, lr 1e-3 for every row; only the loss differs. Lengths are % of the diagonal.", "",
             "| loss | train s | Chamfer L1 | Hausdorff | normal cons. | MAE uniform | MAE near | sign acc. near | "
             "grad norm median | largest pair ratio |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['train_seconds']:.0f} | {100 * r['chamfer_l1_rel']:.3f}% | "
                     f"{100 * r['hausdorff_rel']:.2f}% | {r['normal_consistency']:.3f} | "
                     f"{100 * r['mae_uniform_rel']:.2f}% | {100 * r['mae_near_rel']:.2f}% | "
                     f"{100 * r['sign_accuracy_near']:.1f}% | {r['gradient_norm_median']:.2f} | "
                     f"{r['max_pair_ratio']:.4f} |")
    (RESULTS / "accuracy_levers.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
