"""Levers of the recipe at the quality benchmark's equal budget: what each does to a field trained for the
same time, on the same data.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.budget_levers calibrate SHAPE BUDGET ROW ...   # epochs that fit BUDGET s
    .venv/bin/python -m benchmarks.budget_levers run ROW ...                      # train, evaluate, record
    .venv/bin/python -m benchmarks.budget_levers table                            # write the results table

Each row trains SLL 20 x 64 (``fit-hinge``, lr 5e-3, bfloat16 steps for the first 3/4, as ``lipsdf fit``
on this CPU) on one dataset of the France outline or the Stanford bunny (100k signed points, seed 0; the
sampling rows draw theirs with the row's settings), for a fixed number of epochs, and evaluates it as
``benchmarks/quality.py`` does. Training is deterministic on a CPU, so a row run again gives the same field.

The epochs of a row are those that fit the budget (60 s for the outline, 90 s for the bunny), from
``calibrate``: it times the row's step on its own dataset, alone on both cores, as ``lipsdf fit --time``
does (in bfloat16 and in float32, mixed 3/4 to 1/4). Rows that only change what a step computes on (the sampling,
the averaging of weights) keep their base row's epochs. ``run`` trains on one thread, so that two rows
can share a 2-core machine without changing their epochs; its seconds are then not the budget's.

The optimiser rows (``OPTIMISER_ROWS``) start instead from ``lipsdf fit``'s signed defaults as they were
before lr 1e-2 and Adam's beta2 0.95 (lr 5e-3, beta2 0.999, the 3D sigmas), each change added on top, for
the epochs of France's quality run (56, float32 steps) and for the quick bunny's own 100; each runs with
several seeds (the dataset's and the network's), since one seed's Chamfer moves by 10-20%, and the table
gives their mean and each seed's. Evaluation as ``lipsdf fit`` does (its quick settings for the quick
bunny).

    .venv/bin/python -m benchmarks.budget_levers optimiser ROW ...                # train each seed, record
    .venv/bin/python -m benchmarks.budget_levers full ROW ...                     # one lipsdf fit, record

Results are kept in benchmarks/results/budget_levers.json (a run of some rows replaces only those) and
written as a table to benchmarks/results/budget_levers.md.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.defaults import measure_fit
from lipsdf.dataset import PointDataset
from lipsdf.evaluate import EvaluationConfig, evaluate_field
from lipsdf.geometry.io import load_shape
from lipsdf.pipeline.recipes import SIGNED_SAMPLING, recipe_for
from lipsdf.sampling import sample
from lipsdf.training import Callback, Trainer, TrainingConfig, model_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
SHAPES = {"france": DATA / "polylines2d" / "fra.obj", "bunny": DATA / "meshes" / "stanford-bunny.obj"}
NEAR = SIGNED_SAMPLING  # what lipsdf fit now draws for signed fits

# name -> (shape, lever, {"training": ..., "sampling": ..., "model": ..., "ema": decay})
ROWS = {
    "france: batch 4096, 105 epochs (the committed quality run's)": ("france", "baseline", {
        "training": {"batch_size": 4096, "epochs": 105}}),
    "france: + average of the weights (EMA 0.999)": ("france", "averaging", {
        "training": {"batch_size": 4096, "epochs": 105}, "ema": 0.999}),
    "france: + near sigmas 0.003, 0.01, 0.05": ("france", "sampling", {
        "training": {"batch_size": 4096, "epochs": 105}, "sampling": {"near_sigmas": (0.003, 0.01, 0.05)}}),
    "france: + uniform fraction 0.25": ("france", "sampling", {
        "training": {"batch_size": 4096, "epochs": 105}, "sampling": {"uniform_fraction": 0.25}}),
    "france: + both (uniform 0.25, sigmas 0.003, 0.01, 0.05)": ("france", "sampling", {
        "training": {"batch_size": 4096, "epochs": 105}, "sampling": NEAR}),
    "france: batch 4096, 74 epochs": ("france", "baseline", {"training": {"batch_size": 4096, "epochs": 74}}),
    "france: batch 4096, 74 epochs, uniform 0.25, sigmas 0.003, 0.01, 0.05": ("france", "sampling", {
        "training": {"batch_size": 4096, "epochs": 74}, "sampling": NEAR}),
    "france: batch 4096, 85 epochs (60 s)": ("france", "batch", {"training": {"batch_size": 4096, "epochs": 85}}),
    "france: batch 2048, 65 epochs (60 s)": ("france", "batch", {"training": {"batch_size": 2048, "epochs": 65}}),
    "france: batch 1024, 38 epochs": ("france", "batch", {"training": {"batch_size": 1024, "epochs": 38}}),
    "france: batch 2048, 65 epochs, uniform 0.25, sigmas 0.003, 0.01, 0.05 (60 s)": ("france", "all", {
        "training": {"batch_size": 2048, "epochs": 65}, "sampling": NEAR}),
    "france: batch 2048, width 48, 93 epochs, uniform 0.25, sigmas 0.003, 0.01, 0.05 (60 s)": ("france", "width", {
        "training": {"batch_size": 2048, "epochs": 93}, "sampling": NEAR, "model": {"width": 48}}),
    "france: batch 2048, width 32, 122 epochs, uniform 0.25, sigmas 0.003, 0.01, 0.05 (60 s)": ("france", "width", {
        "training": {"batch_size": 2048, "epochs": 122}, "sampling": NEAR, "model": {"width": 32}}),
    "bunny: batch 4096, 114 epochs (90 s)": ("bunny", "batch", {"training": {"batch_size": 4096, "epochs": 114}}),
    "bunny: batch 2048, 76 epochs": ("bunny", "batch", {"training": {"batch_size": 2048, "epochs": 76}}),
    "bunny: batch 2048, 96 epochs (90 s)": ("bunny", "batch", {"training": {"batch_size": 2048, "epochs": 96}}),
    "bunny: batch 1024, 58 epochs (90 s)": ("bunny", "batch", {"training": {"batch_size": 1024, "epochs": 58}}),
    "bunny: batch 2048, 14 layers, 117 epochs (90 s)": ("bunny", "depth", {
        "training": {"batch_size": 2048, "epochs": 117}, "model": {"layers": 14}}),
    "bunny: batch 2048, 96 epochs, near sigmas 0.003, 0.01, 0.05": ("bunny", "sampling", {
        "training": {"batch_size": 2048, "epochs": 96}, "sampling": {"near_sigmas": (0.003, 0.01, 0.05)}}),
    "bunny: batch 2048, 96 epochs, uniform 0.4, sigmas 0.003, 0.01, 0.05": ("bunny", "sampling", {
        "training": {"batch_size": 2048, "epochs": 96},
        "sampling": {"uniform_fraction": 0.4, "near_sigmas": (0.003, 0.01, 0.05)}}),
    "bunny: batch 2048, 96 epochs, uniform 0.25, sigmas 0.003, 0.01, 0.05": ("bunny", "all", {
        "training": {"batch_size": 2048, "epochs": 96}, "sampling": NEAR}),
}


# name -> (shape, quick, lever, seeds, {"training": ..., "sampling": ...}) on top of BEFORE
BEFORE = {"lr": 5e-3, "adam_beta2": 0.999}
_F56 = {"epochs": 56, "matmul_precision": "float32"}
_SMALL_SIGMAS = {"near_sigmas": (0.002, 0.006, 0.03)}
OPTIMISER_ROWS = {
    "france, 56 epochs: before (lr 5e-3, beta2 0.999, sigmas 0.003 0.01 0.05)": (
        "france", False, "baseline", (0, 1), {"training": _F56}),
    "france, 56 epochs: the same in bfloat16 for 3/4 of the steps": (
        "france", False, "precision", (0,), {"training": {"epochs": 56}}),
    "france, 56 epochs: lr 3e-3": ("france", False, "learning rate", (0,), {"training": {**_F56, "lr": 3e-3}}),
    "france, 56 epochs: lr 1e-2": ("france", False, "learning rate", (0, 1), {"training": {**_F56, "lr": 1e-2}}),
    "france, 56 epochs: lr 1.5e-2": ("france", False, "learning rate", (0,), {"training": {**_F56, "lr": 1.5e-2}}),
    "france, 56 epochs: lr 2e-2": ("france", False, "learning rate", (0,), {"training": {**_F56, "lr": 2e-2}}),
    "france, 56 epochs: lam 30": ("france", False, "loss", (0,), {"training": {**_F56, "lam": 30.0}}),
    "france, 56 epochs: lam 300": ("france", False, "loss", (0,), {"training": {**_F56, "lam": 300.0}}),
    "france, 56 epochs: final margin 1e-3": ("france", False, "margin", (0,),
                                             {"training": {**_F56, "final_margin": 1e-3}}),
    "france, 56 epochs: lr 1e-2, uniform fraction 0.1": ("france", False, "sampling", (0,), {
        "training": {**_F56, "lr": 1e-2}, "sampling": {"uniform_fraction": 0.1}}),
    "france, 56 epochs: lr 1e-2, sigmas 0.002 0.006 0.03": ("france", False, "sampling", (0, 1), {
        "training": {**_F56, "lr": 1e-2}, "sampling": _SMALL_SIGMAS}),
    "france, 56 epochs: lr 1e-2, beta2 0.99": ("france", False, "optimiser", (0, 1), {
        "training": {**_F56, "lr": 1e-2, "adam_beta2": 0.99}}),
    "france, 56 epochs: lr 1.5e-2, beta2 0.99": ("france", False, "optimiser", (0, 1), {
        "training": {**_F56, "lr": 1.5e-2, "adam_beta2": 0.99}}),
    "france, 56 epochs: lr 1e-2, beta2 0.99, sigmas 0.002 0.006 0.03": ("france", False, "all", (0, 1, 2, 3), {
        "training": {**_F56, "lr": 1e-2, "adam_beta2": 0.99}, "sampling": _SMALL_SIGMAS}),
    "france, 56 epochs: lr 1e-2, beta2 0.99, sigmas 0.002 0.006 0.03, bfloat16 for 3/4 of the steps": (
        "france", False, "precision", (0, 1), {
        "training": {"epochs": 56, "lr": 1e-2, "adam_beta2": 0.99}, "sampling": _SMALL_SIGMAS}),
    "france, 56 epochs: lr 1e-2, beta2 0.95, sigmas 0.002 0.006 0.03 (the new default)": (
        "france", False, "all", (0, 1, 2, 3), {"training": {**_F56, "lr": 1e-2, "adam_beta2": 0.95},
                                               "sampling": _SMALL_SIGMAS}),
    "bunny --quick: before (lr 5e-3, beta2 0.999)": ("bunny", True, "baseline", (0, 1), {}),
    "bunny --quick: lr 1e-2, beta2 0.99": ("bunny", True, "optimiser", (0, 1),
                                           {"training": {"lr": 1e-2, "adam_beta2": 0.99}}),
    "bunny --quick: lr 1e-2, beta2 0.95 (the new default)": ("bunny", True, "optimiser", (0, 1),
                                                             {"training": {"lr": 1e-2, "adam_beta2": 0.95}}),
    "bunny --quick: lr 1e-2, beta2 0.95, sigmas 0.002 0.006 0.03": ("bunny", True, "sampling", (0, 1), {
        "training": {"lr": 1e-2, "adam_beta2": 0.95}, "sampling": _SMALL_SIGMAS}),
}


# Full `lipsdf fit`s of meshes with the optimiser rows' setting: name -> (shape, training overrides); compared in
# the docs with benchmarks/defaults.py's rows of the same day.
FULL_FIT_ROWS = {
    "spot, full fit: lr 1e-2, beta2 0.95, 235 epochs": (
        DATA / "meshes" / "spot.obj", {"lr": 1e-2, "adam_beta2": 0.95, "epochs": 235}),
    "bunny, full fit: lr 1e-2, beta2 0.95, 235 epochs": (
        DATA / "meshes" / "stanford-bunny.obj", {"lr": 1e-2, "adam_beta2": 0.95, "epochs": 235}),
}


class WeightAverage(Callback):
    """Keeps an exponential moving average of the weights and puts it into the model before the final field
    is made (any SLL weights are 1-Lipschitz, so the average is too)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def on_train_start(self, trainer, state) -> None:
        self.parameters = list(state.model.parameters())
        self.average = [p.detach().clone() for p in self.parameters]

    def on_step_end(self, trainer, state) -> None:
        torch._foreach_lerp_(self.average, [p.detach() for p in self.parameters], 1 - self.decay)

    def on_train_end(self, trainer, state) -> None:
        with torch.no_grad():
            for parameter, average in zip(self.parameters, self.average):
                parameter.copy_(average)


def dataset(shape_name: str, sampling: dict) -> PointDataset:
    return sample(load_shape(SHAPES[shape_name]), "signed", n=100_000, n_test=20_000, seed=0, **sampling)


def _model(spec: dict, dim: int) -> dict:
    return model_config("signed", dim, **{"arch": "sll", "width": 64, **spec.get("model", {})})


def calibrate(shape_name: str, budget: float, names: list[str]) -> None:
    """Print the epochs of each row that fit ``budget`` seconds, alone on both cores, as ``lipsdf fit --time``
    sizes them (:meth:`~lipsdf.training.Trainer.step_cost`, under bf16 both kinds of step)."""
    torch.set_num_threads(2)
    for name in names:
        _, _, spec = ROWS[name]
        data = dataset(shape_name, spec.get("sampling", {}))
        training = {k: v for k, v in spec["training"].items() if k != "epochs"}
        config = TrainingConfig(epochs=1, checkpoint_every=0, matmul_precision="bf16", **training)
        cost = Trainer(data, _model(spec, data.dim), config).step_cost(3.0)
        steps = math.ceil(len(data.points) / min(config.batch_size, len(data.points)))
        print(f"{name}: {cost.epoch_seconds(steps):.3f} s per epoch -> {cost.epochs_within(budget, steps)} epochs "
              f"in {budget:g} s", flush=True)


def run(name: str) -> dict:
    shape_name, lever, spec = ROWS[name]
    torch.set_num_threads(1)
    shape = load_shape(SHAPES[shape_name])
    data = dataset(shape_name, spec.get("sampling", {}))
    config = TrainingConfig(checkpoint_every=0, seed=0, matmul_precision="bf16", **spec["training"])
    started = time.perf_counter()
    callbacks = [WeightAverage(spec["ema"])] if spec.get("ema") else []
    field = Trainer(data, _model(spec, data.dim), config, callbacks=callbacks).run()
    seconds = time.perf_counter() - started
    metrics = evaluate_field(field, shape, EvaluationConfig()).to_dict()
    return {"shape": shape_name, "lever": lever, "spec": json.loads(json.dumps(spec)),
            "train_seconds_one_thread": round(seconds, 1), **_measured(metrics),
            "mae_all_rel": metrics["distance"]["all"]["mae_rel"], "date": time.strftime("%Y-%m-%d")}


def _measured(metrics: dict) -> dict:
    """The columns of the tables, from an evaluation's ``to_dict()``."""
    surface, distance = metrics["surface"], metrics["distance"]
    return {"chamfer_l1_rel": surface["chamfer_l1_rel"], "hausdorff_rel": surface["hausdorff_rel"],
            "normal_consistency": surface["normal_consistency"], "mae_uniform_rel": distance["uniform"]["mae_rel"],
            "sign_accuracy_near": distance["near"]["sign_accuracy"],
            "max_pair_ratio": metrics["lipschitz"]["max_ratio"]}


def run_optimiser_row(name: str) -> dict:
    """One optimiser row: ``lipsdf fit``'s signed CPU defaults for the shape, with :data:`BEFORE` and the row's
    changes, for each of its seeds (the dataset's and the network's), on one thread."""
    shape_name, quick, lever, seeds, spec = OPTIMISER_ROWS[name]
    torch.set_num_threads(1)
    shape = load_shape(SHAPES[shape_name])
    defaults = recipe_for(shape.dim, quick=quick, device="cpu", signed=True)
    sampling = {**defaults.sampling, "near_sigmas": SIGNED_SAMPLING["near_sigmas"], "n_test": 20_000,
                **spec.get("sampling", {})}
    training = {**{k: v for k, v in defaults.training.items() if k != "checkpoint_every"}, **BEFORE,
                **spec.get("training", {})}
    evaluation = EvaluationConfig(**defaults.evaluation) if quick else EvaluationConfig()
    runs = []
    for seed in seeds:
        data = sample(shape, "signed", seed=seed, **sampling)
        field = Trainer(data, model_config("signed", shape.dim, **{"arch": "sll", **defaults.model}),
                        TrainingConfig(checkpoint_every=0, seed=seed, **training)).run()
        runs.append({"seed": seed, **_measured(evaluate_field(field, shape, evaluation).to_dict())})
    return {"shape": shape_name, "lever": lever, "spec": json.loads(json.dumps(spec)), "seeds": runs,
            "date": time.strftime("%Y-%m-%d")}


def run_full_fit(name: str) -> dict:
    """One `lipsdf fit` with a full fit row's training overrides, timed and measured as defaults.py does."""
    path, training = FULL_FIT_ROWS[name]
    return measure_fit(path, {"training": training})


def _pct(value, digits: int) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"  # the first rows ran before MAE was split


def table(rows: dict) -> None:
    lines = ["# Recipe levers at the equal budget", "",
             f"{platform.machine()}, 2 cores, torch {torch.__version__}, CPU. `python benchmarks/budget_levers.py`. "
             "SLL 20 x 64, fit-hinge, lr 5e-3, bfloat16 for 3/4 of the steps, on 100k signed points of each "
             "shape; the epochs that the budget buys (60 s for the outline, 90 s for the bunny, calibrated "
             "alone on both cores, where the name says so) or the base row's. Trained on one thread, two "
             "rows at a time; lengths are % of the diagonal; MAE on 20k uniform points.", "",
             "| row | lever | Chamfer L1 | Hausdorff | normal cons. | MAE uniform | sign acc. near | largest pair ratio |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in ROWS:
        if name not in rows:
            continue
        r = rows[name]
        lines.append(f"| {name} | {r['lever']} | {_pct(r['chamfer_l1_rel'], 4)} | {_pct(r['hausdorff_rel'], 2)} | "
                     f"{r['normal_consistency']:.4f} | {_pct(r['mae_uniform_rel'], 2)} | "
                     f"{_pct(r['sign_accuracy_near'], 1)} | {r['max_pair_ratio']:.4f} |")
    lines += ["", "## Optimiser rows", "",
              "From `lipsdf fit`'s signed defaults before this change (lr 5e-3, Adam's beta2 0.999, sigmas 0.003, "
              "0.01, 0.05), with each row's changes: France for 56 epochs (its quality run's) in float32 unless "
              "said, the quick bunny for its 100. Means over the seeds (the dataset's and the network's), "
              "then each seed's Chamfer; one thread, two rows at a time.", "",
              "| row | lever | seeds | Chamfer L1 | (each seed) | Hausdorff | normal cons. | MAE uniform | "
              "sign acc. near | largest pair ratio |",
              "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for name in OPTIMISER_ROWS:
        if name not in rows:
            continue
        r = rows[name]
        seeds = r["seeds"]

        def mean(key):
            return statistics.mean(run[key] for run in seeds)
        each = ", ".join(_pct(run["chamfer_l1_rel"], 4) for run in seeds)
        lines.append(f"| {name} | {r['lever']} | {len(seeds)} | {_pct(mean('chamfer_l1_rel'), 4)} | {each} | "
                     f"{_pct(mean('hausdorff_rel'), 2)} | {mean('normal_consistency'):.4f} | "
                     f"{_pct(mean('mae_uniform_rel'), 2)} | {_pct(mean('sign_accuracy_near'), 1)} | "
                     f"{min(run['max_pair_ratio'] for run in seeds):.4f} - "
                     f"{max(run['max_pair_ratio'] for run in seeds):.4f} |")
    lines += ["", "## Full fits", "",
              "`lipsdf fit` of a mesh with the optimiser rows' setting (the rest its defaults); "
              "benchmarks/defaults.md has the defaults' rows of the same day.", "",
              "| row | total time | Chamfer L1 | Hausdorff | normal cons. | MAE uniform | sign acc. near | "
              "largest pair ratio | date |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in FULL_FIT_ROWS:
        if name in rows:
            r = rows[name]
            lines.append(f"| {name} | {r['seconds']['total']:.0f} s | {_pct(r['chamfer_l1_rel'], 4)} | "
                         f"{_pct(r['hausdorff_rel'], 2)} | {r['normal_consistency']:.4f} | "
                         f"{_pct(r['mae_uniform_rel'], 2)} | {_pct(r['sign_accuracy_near'], 1)} | "
                         f"{r['max_pair_ratio']:.4f} | {r['date']} |")
    (RESULTS / "budget_levers.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    if not DATA.is_dir():
        sys.exit(f"needs the shared data in {DATA}")
    command, *args = sys.argv[1:] or ["table"]
    stored = RESULTS / "budget_levers.json"
    rows = json.loads(stored.read_text()) if stored.exists() else {}
    known = {"optimiser": OPTIMISER_ROWS, "full": FULL_FIT_ROWS}.get(command, ROWS)
    unknown = [name for name in (args[2:] if command == "calibrate" else args) if name not in known]
    if unknown:
        sys.exit(f"unknown rows {unknown}; choose from {list(known)}")
    if command == "calibrate":
        calibrate(args[0], float(args[1]), args[2:])
        return
    if command in ("run", "optimiser", "full"):
        for name in args:
            rows[name] = {"run": run, "optimiser": run_optimiser_row, "full": run_full_fit}[command](name)
            print(name, json.dumps(rows[name]), flush=True)
            current = json.loads(stored.read_text()) if stored.exists() else {}  # rows other runs wrote meanwhile
            stored.write_text(json.dumps({**current, name: rows[name]}, indent=2) + "\n")
    table(json.loads(stored.read_text()) if stored.exists() else rows)


if __name__ == "__main__":
    main()
