"""The GPU recipe's optimisation, run on the CPU at its epochs: Adam (today's GPU default) against Muon.

Run by hand (not part of the tests); needs ../shared/data for the bunny:

    .venv/bin/python -m benchmarks.gpu_recipe [--epochs E ...] [--optimisers adam muon]

A GPU fit trains the epochs its 20-second budget buys there (160 in the last H100 run,
``results/gpu.md``), on the GPU recipe's 400,000 points in batches of 32,768. What those epochs reach
depends on the optimiser, not on the device: this script trains exactly that recipe on the CPU (float32
products where the GPU uses TF32) at given epochs, once per optimiser, on one dataset, and measures each
field as ``lipsdf eval`` does (Chamfer against the mesh, normal consistency, distance errors). It says which
optimiser the GPU recipe should use; what a GPU epoch costs with each is ``gpu.py``'s to measure.
Writes benchmarks/results/gpu_recipe.json and gpu_recipe.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.defaults import percent
from benchmarks.provenance import provenance
from lipsdf.evaluate import EvaluationConfig, evaluate_field
from lipsdf.geometry.io import load_shape
from lipsdf.pipeline.recipes import recipe_for
from lipsdf.sampling import SamplingConfig, sample
from lipsdf.training import Trainer, TrainingConfig, model_config

ROOT = Path(__file__).resolve().parents[1]
BUNNY = ROOT.parent / "shared" / "data" / "meshes" / "stanford-bunny.obj"
RESULTS = ROOT / "benchmarks" / "results"


def run(epochs: int, optimiser: str, dataset, shape) -> dict:
    recipe = recipe_for(3, device="cuda")
    training = TrainingConfig(**{**recipe.training, "matmul_precision": "float32", "checkpoint_every": 0},
                              epochs=epochs, optimiser=optimiser)
    model = model_config("signed", 3, **recipe.model)
    started = time.perf_counter()
    field = Trainer(dataset, model, training, device="cpu").run()
    seconds = time.perf_counter() - started
    evaluation = EvaluationConfig(**{"resolution": recipe.resolution, **recipe.evaluation})  # as the fit's contour
    metrics = evaluate_field(field, shape, evaluation).to_dict()
    surface = metrics["surface"]
    return {"epochs": epochs, "optimiser": optimiser, "train_seconds_cpu": round(seconds, 1),
            "test_mae_rel": field.summary["final"]["mae_rel"], "chamfer_l1_rel": surface["chamfer_l1_rel"],
            "hausdorff_rel": surface["hausdorff_rel"], "normal_consistency": surface["normal_consistency"],
            "mae_uniform_rel": metrics["distance"]["uniform"]["mae_rel"],
            "max_pair_ratio": metrics["lipschitz"]["max_ratio"], **provenance()}


def write(rows: list[dict]) -> None:
    (RESULTS / "gpu_recipe.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    lines = ["# The GPU recipe's epochs on the CPU: Adam against Muon", "",
             "`python -m benchmarks.gpu_recipe`: the bunny, the GPU recipe (400,000 points, batch 32,768, "
             "lr 1e-2, SLL 20 x 64, fit-hinge) trained on the CPU in float32 at the given epochs, once per "
             "optimiser, on one dataset (seed 0); measured as `lipsdf eval` does. Lengths are % of the "
             "bounding-box diagonal. The CPU default (3 minutes) gives the bunny 0.035% and 0.9887 "
             "(defaults.md); the last GPU run's default, 160 epochs with Adam and TF32, 0.078% and 0.9815 "
             "(gpu.md). CPU train s is the run's wall clock, beside whatever else the machine ran: not a speed "
             "figure (an epoch's cost on a GPU is gpu.py's to measure).", "",
             "| epochs | optimiser | CPU train s | test MAE | Chamfer L1 | Hausdorff | normal cons. | MAE uniform | "
             "largest pair ratio | commit, date |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row['epochs']} | {row['optimiser']} | {row['train_seconds_cpu']:.0f} | "
                     f"{percent(row['test_mae_rel'], 3)} | {percent(row['chamfer_l1_rel'], 4)} | "
                     f"{percent(row['hausdorff_rel'], 2)} | {row['normal_consistency']:.4f} | "
                     f"{percent(row['mae_uniform_rel'], 3)} | {row['max_pair_ratio']:.4f} | "
                     f"{row['commit']}, {row['date']} |")
    lines += ["", "At the GPU recipe's 160 epochs, Muon places the bunny's surface 1.5x closer than Adam (Chamfer "
              "0.050% against 0.075%, normal consistency 0.9858 against 0.9812), and Adam's row reproduces the "
              "last H100 run's fit (0.078%, 0.9815), so the GPU recipe in 3D now steps its matrices by Muon. "
              "Still short of the CPU default (0.035%, 0.9887): the GPU's 160 epochs are 2,080 steps of 32,768 "
              "points, the CPU's 3 minutes (128 epochs) 12,500 steps of 2,048."] if len(rows) >= 2 else []
    (RESULTS / "gpu_recipe.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[160])
    parser.add_argument("--optimisers", nargs="+", default=["adam", "muon"], choices=["adam", "muon"])
    args = parser.parse_args()
    recipe = recipe_for(3, device="cuda")
    shape = load_shape(BUNNY)
    dataset = sample(shape, "signed", SamplingConfig(**recipe.sampling, seed=0))
    path = RESULTS / "gpu_recipe.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    for epochs in args.epochs:
        for optimiser in args.optimisers:
            row = run(epochs, optimiser, dataset, shape)
            rows = [r for r in rows if (r["epochs"], r["optimiser"]) != (epochs, optimiser)] + [row]
            write(sorted(rows, key=lambda r: (r["epochs"], r["optimiser"])))
            print(json.dumps(row))


if __name__ == "__main__":
    main()
