"""The accuracy ablation: each lever of lipsdf's default recipe, measured on the same runs.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.accuracy_levers [NAME ...]

Every row is one `lipsdf fit` of the France outline (2D) or the Stanford bunny (3D) that differs from the
row it builds on in one lever: the loss, the learning rate, the final hKR margin, the network's width (and
the epochs that the same time buys), the activation, the batch size, the near-surface sampling. All rows
are SLL networks, 1-Lipschitz by construction. The starting point is the old default: SLL 20 x 128, hKR,
lr 1e-3 (2D) or 5e-4 (3D), 60k points and 40 epochs (2D), 200k points and 50 epochs (3D).

Two losses here are experiments, not lipsdf losses: ``fit-hkr-hinge``, the L1 distance fit plus hKR's
plain hinge ``relu(margin - y f)`` (which no 1-Lipschitz field can satisfy within the margin of the
surface), and ``fit-relative``, ``|f - d| / (|d| + 0.01)``. lipsdf's ``fit-hinge`` caps the hinge's demand
at ``|d|`` (see :func:`lipsdf.losses.sign_hinge_loss`).

Results are kept in benchmarks/results/accuracy_levers.json (a run of some rows replaces only those) and
written as a table to benchmarks/results/accuracy_levers.md.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from lipsdf.losses import LOSSES, Loss, distance_fit_loss
from lipsdf.evaluate import evaluate_field
from lipsdf.pipeline import FitOptions, plan_fit
from lipsdf.pipeline.single import size_training
from lipsdf.sampling import sample
from lipsdf.training import OffsetContext, Trainer, zero_level_offset

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FRANCE = DATA / "polylines2d" / "fra.obj"
BUNNY = DATA / "meshes" / "stanford-bunny.obj"
FEATURES = DATA / "polylines3d" / "fandisk_features.obj"
SCAN = DATA / "pointclouds" / "bunny_scan_points.xyz"
RESULTS = ROOT / "benchmarks" / "results"

OLD_2D = {"model": {"width": 128}, "training": {"loss": "hkr", "lr": 1e-3, "epochs": 40}}
OLD_3D = {"model": {"width": 128}, "training": {"loss": "hkr", "lr": 5e-4, "epochs": 50}}
# The defaults before the surface shift of signed fields and bfloat16 steps ("shift": False turns the shift off)
PREVIOUS_2D = {"training": {"matmul_precision": "float32", "epochs": 120}, "shift": False}
PREVIOUS_QUICK_3D = {"quick": True, "training": {"matmul_precision": "float32", "epochs": 80}, "shift": False}
PREVIOUS_3D = {"training": {"matmul_precision": "float32", "epochs": 260}, "shift": False}


def _with(base: dict, **changes) -> dict:
    """``base`` fit options with some model / training / sampling entries (or the mode) changed."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for group, values in changes.items():
        out[group] = {**out.get(group, {}), **values} if isinstance(values, dict) else values
    return out


def _dist(base: dict, **training) -> dict:
    """A loss on exact distances (the ``dist`` datasets these rows were first measured on)."""
    return _with(base, training=training, mode="dist")


# name -> (shape, lever, fit options)
CONTENDERS = {
    "old default (hKR, 20 x 128, lr 1e-3)": (FRANCE, "baseline", OLD_2D),
    "lr 3e-3": (FRANCE, "learning rate", _with(OLD_2D, training={"lr": 3e-3})),
    "lr 1e-2": (FRANCE, "learning rate", _with(OLD_2D, training={"lr": 1e-2})),
    "lr 2e-2": (FRANCE, "learning rate", _with(OLD_2D, training={"lr": 2e-2})),
    "lr 1e-2, final margin 1e-3": (FRANCE, "margin", _with(OLD_2D, training={"lr": 1e-2, "final_margin": 1e-3})),
    "final margin 1e-3 (lr 1e-3)": (FRANCE, "margin", _with(OLD_2D, training={"final_margin": 1e-3})),
    "Softplus(100) activation": (FRANCE, "activation", _with(OLD_2D, model={"activation": "softplus"})),
    "near-surface sigmas 0.002, 0.01, 0.05": (FRANCE, "sampling",
                                              _with(OLD_2D, sampling={"near_sigmas": (0.002, 0.01, 0.05)})),
    "batch 512, 10 epochs (same steps)": (FRANCE, "batch", _with(OLD_2D, training={"batch_size": 512,
                                                                                    "epochs": 10})),
    "batch 512, 20 epochs, lr 5e-3": (FRANCE, "batch", _with(OLD_2D, training={"batch_size": 512, "epochs": 20,
                                                                                "lr": 5e-3})),
    "width 64 (same epochs: 1/3 of the time)": (FRANCE, "width", _with(OLD_2D, model={"width": 64})),
    "width 64, 120 epochs, lr 5e-3 (same time)": (FRANCE, "width", _with(OLD_2D, model={"width": 64},
                                                                          training={"lr": 5e-3, "epochs": 120})),
    "L1 distance fit (lr 1e-3)": (FRANCE, "loss", _dist(OLD_2D, loss="fit", eikonal=0.0)),
    "L1 fit + plain hKR hinge, lam 100": (FRANCE, "loss", _dist(OLD_2D, loss="fit-hkr-hinge")),
    "L1 fit + plain hKR hinge, lam 10": (FRANCE, "loss", _dist(OLD_2D, loss="fit-hkr-hinge", lam=10.0)),
    "relative L1 fit": (FRANCE, "loss", _dist(OLD_2D, loss="fit-relative")),
    "fit-hinge (lr 1e-3)": (FRANCE, "loss", _dist(OLD_2D, loss="fit-hinge")),
    "L1 distance fit, lr 5e-3": (FRANCE, "loss", _dist(OLD_2D, loss="fit", eikonal=0.0, lr=5e-3)),
    "fit-hinge, lr 5e-3": (FRANCE, "loss", _dist(OLD_2D, loss="fit-hinge", lr=5e-3)),
    "fit-hinge, width 64, 120 epochs, lr 5e-3": (FRANCE, "all", _with(
        _dist(OLD_2D, loss="fit-hinge", lr=5e-3, epochs=120), model={"width": 64})),
    "fit-hinge, width 64, 120 epochs, lr 1e-2": (FRANCE, "all", _with(
        _dist(OLD_2D, loss="fit-hinge", lr=1e-2, epochs=120), model={"width": 64})),
    "new default: `lipsdf fit` (signed data with distances)": (FRANCE, "default", {}),
    "new default with Softplus(100)": (FRANCE, "activation", {"model": {"activation": "softplus", "beta": 100.0}}),
    "new default, ortho 8 x 64 (Björck + MaxMin)": (FRANCE, "architecture", {"model": {"arch": "ortho", "layers": 8,
                                                                                       "width": 64}}),
    "new default, ortho 12 x 64 (Björck + MaxMin)": (FRANCE, "architecture", {"model": {"arch": "ortho",
                                                                                        "layers": 12, "width": 64}}),
    "new default, SLL 10 x 96": (FRANCE, "architecture", {"model": {"layers": 10, "width": 96}}),
    "bunny: old default (hKR, 20 x 128, lr 5e-4)": (BUNNY, "baseline", OLD_3D),
    "bunny: lr 1e-2": (BUNNY, "learning rate", _with(OLD_3D, training={"lr": 1e-2})),
    "bunny: fit-hinge, width 64, 150 epochs, lr 5e-3": (BUNNY, "all", _with(
        _dist(OLD_3D, loss="fit-hinge", lr=5e-3, epochs=150), model={"width": 64})),
    "bunny: new default: `lipsdf fit`": (BUNNY, "default", {}),
    "bunny --quick: new default (40 epochs)": (BUNNY, "default", {"quick": True, "training": {"epochs": 40}}),
    "bunny: new default, lr 1e-2, near sigmas 0.005, 0.02, 0.05": (BUNNY, "all", {
        "training": {"lr": 1e-2}, "sampling": {"near_sigmas": (0.005, 0.02, 0.05)}}),
    "bunny --quick: new default (80 epochs)": (BUNNY, "default", {"quick": True}),
    "bunny --quick: uniform fraction 0.3": (BUNNY, "sampling", {"quick": True, "sampling": {"uniform_fraction": 0.3}}),
    "bunny --quick: near sigmas 0.005, 0.02, 0.05": (BUNNY, "sampling", {
        "quick": True, "sampling": {"near_sigmas": (0.005, 0.02, 0.05)}}),
    "bunny --quick: lam 1000": (BUNNY, "loss", {"quick": True, "training": {"lam": 1000.0}}),
    "bunny --quick: lam 10": (BUNNY, "loss", {"quick": True, "training": {"lam": 10.0}}),
    "bunny --quick: lr 1e-2": (BUNNY, "learning rate", {"quick": True, "training": {"lr": 1e-2}}),
    "bunny --quick: lr 1e-2, near sigmas 0.005, 0.02, 0.05": (BUNNY, "all", {
        "quick": True, "training": {"lr": 1e-2}, "sampling": {"near_sigmas": (0.005, 0.02, 0.05)}}),
    "features --quick: margin 0.01 -> 0.0025 (the old default) †": (FEATURES, "baseline", {
        "quick": True, "training": {"margin": 0.01, "final_margin": 0.0025}}),
    "features --quick: near sigmas 0.002, 0.01, 0.05 †": (FEATURES, "sampling", {
        "quick": True, "sampling": {"near_sigmas": (0.002, 0.01, 0.05)},
        "training": {"margin": 0.01, "final_margin": 0.0025}}),
    "features --quick: constant margin 0.01 †": (FEATURES, "margin", {
        "quick": True, "training": {"margin": 0.01, "final_margin": 0.01}}),
    "features --quick: constant margin 0.02 †": (FEATURES, "margin", {
        "quick": True, "training": {"margin": 0.02, "final_margin": 0.02}}),
    "features --quick: constant margin 0.04 †": (FEATURES, "margin", {
        "quick": True, "training": {"margin": 0.04, "final_margin": 0.04}}),
    "features --quick: constant margin 0.02, lam 1000 †": (FEATURES, "margin", {
        "quick": True, "training": {"margin": 0.02, "final_margin": 0.02, "lam": 1000.0}}),
    "features --quick: near sigmas 0.002, 0.01, 0.05, constant margin 0.02 †": (FEATURES, "all", {
        "quick": True, "sampling": {"near_sigmas": (0.002, 0.01, 0.05)},
        "training": {"margin": 0.02, "final_margin": 0.02}}),
    "features --quick: constant margin 0.02, surface level without the cap ‡": (FEATURES, "margin", {
        "quick": True, "training": {"margin": 0.02, "final_margin": 0.02}}),
    "features --quick: new default (constant margin 0.02, surface level)": (FEATURES, "default", {"quick": True}),
    "features: margin 0.01 -> 0.0025, no surface level (the old default) †": (FEATURES, "baseline", {
        "training": {"margin": 0.01, "final_margin": 0.0025}}),
    "features: constant margin 0.02, no surface level †": (FEATURES, "margin", {
        "training": {"margin": 0.02, "final_margin": 0.02}}),
    "features: constant margin 0.02, surface level without the cap ‡": (FEATURES, "margin", {
        "training": {"margin": 0.02, "final_margin": 0.02}}),
    "features: new default: `lipsdf fit` (constant margin 0.02, surface level)": (FEATURES, "default", {}),
    "scan --mode unsigned --quick (hKR): margin 0.01 -> 0.0025 (the old default)": (SCAN, "baseline", {
        "quick": True, "mode": "unsigned", "training": {"margin": 0.01, "final_margin": 0.0025}}),
    "scan --mode unsigned --quick (hKR): new default (constant margin 0.02)": (SCAN, "margin", {
        "quick": True, "mode": "unsigned"}),
    "bunny --quick: Softplus(100) (40 epochs)": (BUNNY, "activation", {
        "quick": True, "training": {"epochs": 40}, "model": {"activation": "softplus", "beta": 100.0}}),
    "bunny --quick: Softplus(30) (40 epochs)": (BUNNY, "activation", {
        "quick": True, "training": {"epochs": 40}, "model": {"activation": "softplus", "beta": 30.0}}),
    "fra: previous default (float32, no surface shift, 120 epochs)": (FRANCE, "baseline", PREVIOUS_2D),
    "fra: + surface shift": (FRANCE, "shift", _with(PREVIOUS_2D, shift=True)),
    "fra: + shift, bf16 for 3/4 of the steps (same 120 epochs)": (FRANCE, "precision", _with(
        PREVIOUS_2D, shift=True, training={"matmul_precision": "bf16"})),
    "fra: + shift, bf16 throughout, 185 epochs": (FRANCE, "precision", _with(
        PREVIOUS_2D, shift=True, training={"matmul_precision": "bf16", "epochs": 185, "bf16_share": 1.0})),
    "fra: + shift, bf16 throughout, 230 epochs": (FRANCE, "precision", _with(
        PREVIOUS_2D, shift=True, training={"matmul_precision": "bf16", "epochs": 230, "bf16_share": 1.0})),
    "fra: + shift, bf16 for half the steps, 135 epochs": (FRANCE, "precision", _with(
        PREVIOUS_2D, shift=True, training={"matmul_precision": "bf16", "epochs": 135, "bf16_share": 0.5})),
    "fra: + shift, bf16 for 9/10 of the steps, 182 epochs": (FRANCE, "precision", _with(
        PREVIOUS_2D, shift=True, training={"matmul_precision": "bf16", "epochs": 182, "bf16_share": 0.9})),
    "fra: new default: shift, bf16 for 3/4 of the steps, 160 epochs": (FRANCE, "default", _with(
        PREVIOUS_2D, shift=True, training={"matmul_precision": "bf16", "epochs": 160})),
    "bunny --quick: previous default (float32, no surface shift, 80 epochs)": (BUNNY, "baseline", PREVIOUS_QUICK_3D),
    "bunny --quick: + surface shift": (BUNNY, "shift", _with(PREVIOUS_QUICK_3D, shift=True)),
    "bunny --quick: new default: shift, bf16 for 3/4 of the steps, 120 epochs": (BUNNY, "default", _with(
        PREVIOUS_QUICK_3D, shift=True, training={"matmul_precision": "bf16", "epochs": 120})),
    "bunny: previous default (float32, no surface shift, 260 epochs)": (BUNNY, "baseline", PREVIOUS_3D),
    "bunny: + surface shift": (BUNNY, "shift", _with(PREVIOUS_3D, shift=True)),
    "bunny: new default: shift, bf16 for 3/4 of the steps, 400 epochs": (BUNNY, "default", _with(
        PREVIOUS_3D, shift=True, training={"matmul_precision": "bf16", "epochs": 400})),
}


def _fit_with_plain_hinge(model, batch):
    values = model(batch.points)
    labels = torch.where(batch.targets < 0, -1.0, 1.0)
    return (distance_fit_loss(values, batch.targets, "l1")
            + batch.lam * torch.relu(batch.margin - labels * values).mean())


def _relative_fit(model, batch):
    return ((model(batch.points) - batch.targets).abs() / (batch.targets.abs() + 0.01)).mean()


def run(name: str) -> dict:
    """One row: ``lipsdf fit``'s plan for the row's options, trained and evaluated as ``fit`` does (its
    epochs are given, so no budget is involved); ``"shift": False`` trains with signed fields unshifted."""
    shape, lever, options = CONTENDERS[name]
    options = dict(options)
    rule = zero_level_offset if options.pop("shift", True) else _unshifted_signed
    started = time.perf_counter()
    plan = plan_fit(shape, FitOptions(**options))
    dataset = sample(plan.shape, plan.mode, plan.sampling)
    if plan.budget is not None:  # a row without epochs trains what fit's budget buys
        plan = size_training(plan, dataset, started)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "log.jsonl"
        field = Trainer(dataset, plan.model, plan.training, log=log, offset=rule).run()
        records = [json.loads(line) for line in log.read_text().splitlines()]
    metrics = evaluate_field(field, plan.shape, plan.evaluation).to_dict()
    surface = metrics["surface"] or {}
    return {"shape": shape.stem, "lever": lever, "train_seconds": field.summary["seconds"],
            "chamfer_l1_rel": surface.get("chamfer_l1_rel"), "hausdorff_rel": surface.get("hausdorff_rel"),
            "normal_consistency": surface.get("normal_consistency"),
            "mae_uniform_rel": metrics["distance"]["uniform"]["mae_rel"],
            "mae_near_rel": metrics["distance"]["near"]["mae_rel"],
            "sign_accuracy_near": metrics["distance"]["near"].get("sign_accuracy"),
            "gradient_norm_median": metrics["gradient_norm"]["median"],
            "max_pair_ratio": metrics["lipschitz"]["max_ratio"], "date": time.strftime("%Y-%m-%d"),
            "curve": [[r["seconds"], r["mae_rel"], r.get("sign_accuracy")] for r in records]}


def _unshifted_signed(model, context: OffsetContext) -> float:
    """The offset rule before signed fields were shifted to their surface level (unsigned ones still are)."""
    return 0.0 if context.kind == "signed" else zero_level_offset(model, context)


def plot(out: dict) -> None:
    """Test error against training time, for the rows that kept their per-epoch log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, row in out["rows"].items():
        if not row.get("curve"):
            continue
        seconds, mae, sign = zip(*row["curve"])
        axes[0].plot(seconds, [100 * v for v in mae], label=f"{row['shape']}: {name}")
        if None not in sign:  # unsigned fields have no sign
            axes[1].plot(seconds, [100 * (1 - v) for v in sign], label=f"{row['shape']}: {name}")
    axes[0].set(xlabel="training seconds (2-core CPU)", ylabel="test MAE, % of the diagonal", yscale="log")
    axes[1].set(xlabel="training seconds (2-core CPU)", ylabel="test sign errors, %", yscale="log")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(RESULTS / "accuracy_levers.png", dpi=110)
    plt.close(figure)


def write(out: dict) -> None:
    (RESULTS / "accuracy_levers.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Accuracy levers: what each change of the recipe did, on the same runs", "",
             f"{out['machine']}. `python benchmarks/accuracy_levers.py`. Every row is one `lipsdf fit` that differs "
             "from the old default (first row of each shape) as its name says; SLL throughout, so every field is "
             "1-Lipschitz by construction. Lengths are % of the diagonal. Rows marked * shared the CPU with other "
             "work, so their training time is inflated (their quality is not affected). Rows marked † were measured "
             "before unsigned fields were shifted to their surface level (`lipsdf.training.zero_level_offset`), which every "
             "unsigned fit on distances now gets; rows marked ‡ with that shift not yet capped at a quarter of the "
             "margin. \"Surface shift\": a signed field shifted by a constant so that its median on the shape's "
             "surface samples is zero (`lipsdf.training.zero_level_offset`); \"bf16 for 3/4 of the steps\": bfloat16 products "
             "(autocast) for the first 3/4 of the steps, float32 for the rest (`--precision bf16`).", "",
             "| shape | change | lever | train s | Chamfer L1 | Hausdorff | normal cons. | MAE uniform | MAE near | "
             "sign acc. near | grad norm median | largest pair ratio |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in out["rows"].items():
        seconds = f"{r['train_seconds']:.0f}" + (" *" if r.get("shared_cpu") else "")
        near = "—" if r["mae_near_rel"] is None else f"{100 * r['mae_near_rel']:.2f}%"  # rows run without it
        sign = "—" if r["sign_accuracy_near"] is None else f"{100 * r['sign_accuracy_near']:.1f}%"  # unsigned
        consistency = "—" if r["normal_consistency"] is None else f"{r['normal_consistency']:.3f}"  # curves
        lines.append(f"| {r['shape']} | {name} | {r['lever']} | {seconds} | {100 * r['chamfer_l1_rel']:.3f}% | "
                     f"{100 * r['hausdorff_rel']:.2f}% | {consistency} | "
                     f"{100 * r['mae_uniform_rel']:.2f}% | {near} | "
                     f"{sign} | {r['gradient_norm_median']:.2f} | "
                     f"{r['max_pair_ratio']:.4f} |")
    lines += ["", "Quality against training time, for the rows run with their per-epoch log "
              "(the test errors of each epoch, on 4096 test points):", "", "![curves](accuracy_levers.png)"]
    (RESULTS / "accuracy_levers.md").write_text("\n".join(lines) + "\n")
    plot(out)


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    LOSSES["fit-hkr-hinge"] = Loss(("dist",), _fit_with_plain_hinge)
    LOSSES["fit-relative"] = Loss(("dist",), _relative_fit)
    names = sys.argv[1:] or list(CONTENDERS)
    unknown = set(names) - set(CONTENDERS)
    if unknown:
        sys.exit(f"unknown rows {sorted(unknown)}; choose from {list(CONTENDERS)}")
    stored = RESULTS / "accuracy_levers.json"
    out = json.loads(stored.read_text()) if stored.exists() else {"rows": {}}
    out["machine"] = f"{platform.machine()}, torch {torch.__version__}, CPU"
    for name in names:
        out["rows"][name] = run(name)
        print(name, out["rows"][name], flush=True)
        out["rows"] = {key: out["rows"][key] for key in CONTENDERS if key in out["rows"]}
        write(out)


if __name__ == "__main__":
    main()
