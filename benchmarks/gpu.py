"""GPU benchmark: every figure of the GPU-speed issue, in one process, in a few minutes on one H100 or H200.

Run by hand on a machine with CUDA (not part of the tests); needs ../shared/data for the bunny:

    .venv/bin/python -m benchmarks.gpu              # writes benchmarks/results/gpu.json and gpu.md
    .venv/bin/python -m benchmarks.gpu --smoke      # the same code paths, tiny, on the CPU (a test runs this)

Figures, all from this one run:

* sampling the fit's points with the geometry on the device against libigl on the CPU: seconds, and how
  far the distances and signs agree;
* training throughput of SLL 20 x 128, points per second: the eager step at batch 4096 (no CUDA graph),
  and the fit's default GPU configuration (CUDA-graph step, its batch size);
* precision: the largest pair ratio, in float64, of a field trained with TF32 matrix products, and the
  largest pair ratio of TF32 *evaluations* of the same field on close pairs (what inference in TF32 would
  break);
* ``lipsdf fit bunny`` end to end: seconds per stage, Chamfer, normal consistency, pair ratio;
* ``lipsdf mesh --res 512``: pruned and dense seconds, network evaluations per second, and whether the
  pruned mesh equals the dense one;
* sphere tracing at 1024 x 1024: rays per second, and the rays that stepped through the surface;
* ``lipsdf fit-many`` on 32 shapes with stacked training: shapes a minute, and the bunny's metrics there
  against its single fit's.

``--smoke`` shrinks every size (a builtin sphere, a 2 x 16 network, a 32^3 grid, a 32 x 32 image) and runs
on the CPU unless ``--device`` says otherwise; it writes to ``--out`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from lipsdf.evaluate import lipschitz_ratio
from lipsdf.field import NeuralField
from lipsdf.geometry.distance import GroundTruth
from lipsdf.geometry.io import load_shape
from lipsdf.geometry.normalize import Normalization
from lipsdf.nn import build_model
from lipsdf.pipeline.recipes import recipe_for
from lipsdf.query import contour, orbit_camera, trace_image
from lipsdf.query.grid import field_grid, grid_unit_values
from lipsdf.query.trace import shape_framing
from lipsdf.sampling import sample
from lipsdf.training import EpochRecords, Trainer, TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
BUNNY = ROOT.parent / "shared" / "data" / "meshes" / "stanford-bunny.obj"
RESULTS = ROOT / "benchmarks" / "results"


def sizes(smoke: bool, shape: Path = BUNNY) -> dict:
    if smoke:
        return {"shape": "builtin:sphere", "model": {"arch": "sll", "dim": 3, "layers": 2, "width": 16},
                "fit_model": {"arch": "sll", "dim": 3, "layers": 2, "width": 16},
                "points": 4096, "eager_batch": 512, "batches": [512], "resolution": 32, "image": 32,
                "eval_points": 1 << 14, "sweep": [(512, 2, None, "float32", "muon")],
                "fit": ["--quick", "-n", "3000", "--n-test", "400", "--epochs", "2", "--layers", "2", "--width", "16",
                        "--res", "32", "--image-size", "32", "--eval-n-uniform", "400", "--eval-n-near", "400",
                        "--eval-pairs", "400", "--eval-n-surface", "400"]}
    return {"shape": str(shape), "model": {"arch": "sll", "dim": 3, "layers": 20, "width": 128},
            "fit_model": {"arch": "sll", "dim": 3, "layers": 20, "width": 64},
            "points": 400_000, "eager_batch": 4096, "batches": [4096, 8192, 16384, 32768, 65536],
            "resolution": 512, "image": 1024, "eval_points": 1 << 24,
            "sweep": [(32768, 160, 1e-2, "tf32", "muon"), (32768, 160, 1e-2, "tf32", "adam"),
                      (32768, 120, 1e-2, "tf32", "muon"), (32768, 240, 1e-2, "tf32", "muon")],
            "fit": []}


def throughput(dataset, model: dict, batch: int, lr: float, device: str, cuda_graph: bool,
               precision: str = "float32", epochs: int = 3, optimiser: str = "adam") -> float:
    """Training points per second over the epochs after the first (which pays warm-up and capture)."""
    config = TrainingConfig(epochs=epochs, batch_size=batch, lr=lr, checkpoint_every=0, cuda_graph=cuda_graph,
                            matmul_precision=precision, optimiser=optimiser)
    log = EpochRecords()
    Trainer(dataset, model, config, device=device, callbacks=[log]).run()
    records = log.records
    steps = math.ceil(len(dataset.points) / min(batch, len(dataset.points)))
    return (epochs - 1) * steps * batch / (records[-1]["seconds"] - records[0]["seconds"])


def training(dataset, size: dict, device: str, smoke: bool) -> dict:
    gpu = recipe_for(3, device=device).training
    default_batch = size["eager_batch"] if smoke else gpu["batch_size"]
    lr = TrainingConfig(**{key: value for key, value in gpu.items() if key != "epochs"}).learning_rate
    precision = gpu.get("matmul_precision", "float32")
    eager = throughput(dataset, size["model"], size["eager_batch"], lr, device, cuda_graph=False)
    optimiser = gpu.get("optimiser", "adam")
    graphed = throughput(dataset, size["model"], default_batch, lr, device, cuda_graph=True, precision=precision,
                         optimiser=optimiser)
    graphed_fit = {name: throughput(dataset, size["fit_model"], default_batch, lr, device, cuda_graph=True,
                                    precision=precision, optimiser=name) for name in ("adam", "muon")}
    sweep = {}
    for model in (size["model"], size["fit_model"]):
        name = label(model)
        sweep[name] = {str(batch): throughput(dataset, model, batch, lr, device, cuda_graph=True)
                       for batch in size["batches"]}
        progress(f"  {name}: " + ", ".join(f"{b} {v / 1e6:.2f}M/s" for b, v in sweep[name].items()))
    return {"model": label(size["model"]), "precision": precision, "eager_batch": size["eager_batch"],
            "eager_points_per_second": eager, "default_batch": default_batch, "optimiser": optimiser,
            "default_points_per_second": graphed, "speedup": graphed / eager, "cuda_graph_sweep": sweep,
            "fit_model": label(size["fit_model"]), "fit_model_by_optimiser": graphed_fit}


def evaluation(size: dict, device: str) -> dict:
    """Network evaluations per second (no gradients, frozen weights) at the field's GPU batch size."""
    out = {}
    for config in (size["fit_model"], size["model"]):
        name = label(config)
        field = NeuralField(build_model(config), Normalization(np.zeros(3), 1.0), config, device=device)
        x = torch.rand(size["eval_points"], 3, device=field.device) * 2 - 1
        field.unit_values(x[:1024])
        for batch in (1 << 18, 1 << 20):
            sync(field)
            started = time.perf_counter()
            field.unit_values(x, batch_size=batch)
            sync(field)
            out[f"{name}, batch {batch}"] = size["eval_points"] / (time.perf_counter() - started)
    return out


def precision(dataset, model: dict, device: str, batch: int) -> dict:
    """Train with TF32 matrix products, then check the guarantee in float64 and in TF32 evaluations."""
    config = TrainingConfig(epochs=2, batch_size=batch, lr=1e-2, checkpoint_every=0, matmul_precision="tf32")
    field = Trainer(dataset, model, config, device=device).run()
    trained = lipschitz_ratio(field, n_pairs=100_000)  # float64
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.9, 0.9, size=(100_000, 3))
    step = rng.normal(size=x.shape)
    y = x + 1e-3 * step / np.linalg.norm(step, axis=1, keepdims=True)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        values = field(np.vstack([x, y]), unit=True)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    evaluated = float((np.abs(values[:len(x)] - values[len(x):]) / 1e-3).max())
    return {"pair_ratio_float64_after_tf32_training": trained, "pair_ratio_tf32_evaluation_close_pairs": evaluated}


def accuracy_sweep(dataset, size: dict, device: str) -> list:
    """The bunny fit's training at several batch sizes and learning rates: seconds and test errors, to
    choose the GPU defaults."""
    defaults = recipe_for(3, device=device)
    rows = []
    for batch, epochs, lr, precision, optimiser in size["sweep"]:
        config = TrainingConfig(**{**defaults.training, "batch_size": batch, "epochs": epochs, "lr": lr,
                                   "checkpoint_every": 0, "matmul_precision": precision, "optimiser": optimiser})
        started = time.perf_counter()
        field = Trainer(dataset, size["fit_model"], config, device=device).run()
        final = field.summary["final"]
        rows.append({**final, "batch": batch, "epochs": epochs, "lr": config.learning_rate,
                     "precision": precision, "optimiser": optimiser, "seconds": time.perf_counter() - started})
        progress(f"  batch {batch} x {epochs} epochs: {rows[-1]['seconds']:.1f} s, test MAE "
                 f"{100 * final['mae_rel']:.3f}%")
    return rows


def fit_cli(size: dict, device: str) -> tuple[dict, Path]:
    """``lipsdf fit`` as a user runs it, timed from the outside (imports and CUDA start-up included)."""
    folder = Path(tempfile.mkdtemp(prefix="lipsdf_gpu_fit_"))
    command = [sys.executable, "-m", "lipsdf", "fit", size["shape"], "-o", str(folder), "--device", device, "-q",
               *size["fit"]]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"lipsdf fit failed ({done.returncode}): {done.stderr[-1500:]}")
    metrics = json.loads((folder / "metrics.json").read_text())
    result = {"wall_seconds": wall, "seconds": metrics["seconds"],
              "chamfer_l1_rel": metrics["surface"]["chamfer_l1_rel"],
              "hausdorff_rel": metrics["surface"].get("hausdorff_rel"),
              "normal_consistency": metrics["surface"]["normal_consistency"],
              "max_pair_ratio": metrics["lipschitz"]["max_ratio"], "settings": metrics.get("settings")}
    return result, next(folder.glob("*.pt"))


def collection(smoke: bool, device: str, fit: dict) -> dict:
    """``lipsdf fit-many`` on a collection (32 shapes: ../shared/data's and generated ones; with ``smoke``,
    2 built-in ones) as a user runs it, with its default stacking on a GPU; shapes a minute, and the
    bunny's metrics against those of its single fit (the ``fit`` section)."""
    folder = Path(tempfile.mkdtemp(prefix="lipsdf_gpu_many_"))
    shapes = collection_shapes(folder / "inputs", smoke)
    extra = (["--quick", "-n", "2000", "--n-test", "400", "--epochs", "2", "--res", "32", "--stack", "2",
              "--image-size", "32", "--eval-n-uniform", "400", "--eval-n-near", "400", "--eval-pairs", "400",
              "--eval-n-surface", "400"] if smoke else [])
    command = [sys.executable, "-m", "lipsdf", "fit-many", *shapes, "-o", str(folder / "fits"), "--device", device,
               "-q", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    rows = list(csv.DictReader(open(folder / "fits" / "summary.csv")))
    result = {"shapes": len(shapes), "wall_seconds": wall, "shapes_per_minute": 60 * len(shapes) / wall,
              "exit": done.returncode, "failed": [row["name"] for row in rows if row["status"] != "done"],
              "stderr": done.stderr[-500:]}
    bunny = [row for row in rows if row["name"] == BUNNY.stem]
    if bunny and fit and "chamfer_l1_rel" in fit:
        result["bunny"] = {"stacked": {key: float(bunny[0][key]) for key in ("chamfer_l1_rel", "normal_consistency")},
                           "alone": {key: fit[key] for key in ("chamfer_l1_rel", "normal_consistency")}}
    return result


def collection_shapes(folder: Path, smoke: bool) -> list[str]:
    """The shapes of :func:`collection`: ../shared/data's meshes and outlines, built-in shapes, and tori,
    boxes and flowers of other proportions written here."""
    if smoke:
        return ["builtin:circle", "builtin:flower"]
    from lipsdf.geometry.io import save_shape
    from lipsdf.geometry.primitives import box, flower, torus

    folder.mkdir(parents=True, exist_ok=True)
    data = BUNNY.parents[1]
    shapes = sorted(str(path) for path in (data / "meshes").glob("*.obj")) + sorted(
        str(path) for path in (data / "polylines2d").glob("*.obj"))
    shapes += [f"builtin:{name}" for name in ("circle", "rectangle", "flower", "sphere", "torus", "box")]
    made = [(f"torus_{minor}", torus(1.0, minor)) for minor in (0.15, 0.25, 0.45, 0.6)]
    made += [(f"box_{x}x{y}", box((x, y, 1.0))) for x, y in ((1.0, 1.0), (3.0, 1.0), (2.0, 2.0), (4.0, 0.5))]
    made += [(f"flower_{petals}", flower(petals)) for petals in (3, 4, 6, 7, 8, 9, 11)]
    for name, shape in made[:32 - len(shapes)]:
        save_shape(shape, folder / f"{name}.obj")
        shapes.append(str(folder / f"{name}.obj"))
    return shapes


def mesh_timings(field: NeuralField, resolution: int) -> dict:
    out = {}
    for name, dense in (("pruned", False), ("dense", True)):
        contour(field, 0.0, resolution=16, dense=dense)  # warm up
        sync(field)
        started = time.perf_counter()
        result = contour(field, 0.0, resolution=resolution, dense=dense)
        sync(field)
        seconds = time.perf_counter() - started
        out[name] = {"seconds": seconds, "evaluations": result.evaluations,
                     "evaluations_per_second": result.evaluations / seconds, "mesh": result.contours[0].shape}
        progress(f"  {name}: {seconds:.2f} s, {result.evaluations:,} evaluations")
    grid = field_grid(field, resolution)
    grid_unit_values(field, field_grid(field, 16))  # warm up
    sync(field)
    started = time.perf_counter()
    grid_unit_values(field, grid)
    sync(field)
    seconds = time.perf_counter() - started
    out["dense_evaluation"] = {"seconds": seconds, "evaluations_per_second": grid.size / seconds}
    progress(f"  dense evaluation on the device: {seconds:.2f} s")
    a, b = out["pruned"].pop("mesh"), out["dense"].pop("mesh")
    out["identical"] = bool(a is not None and b is not None and np.array_equal(a.faces, b.faces)
                            and np.array_equal(a.vertices, b.vertices))
    return out


def tracing(field: NeuralField, size: int, out: Path) -> dict:
    from torch.profiler import ProfilerActivity, profile

    centre, radius = shape_framing(field)
    camera = orbit_camera(centre, 2.5 * radius, width=size, height=size)
    trace_image(field, orbit_camera(centre, 2.5 * radius, width=16, height=16))  # warm up
    sync(field)
    started = time.perf_counter()
    result = trace_image(field, camera)
    sync(field)
    seconds = time.perf_counter() - started
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if field.device.type == "cuda" else [])
    with profile(activities=activities) as prof:  # a second trace, profiled: where its time goes
        trace_image(field, camera)
        sync(field)
    (out / "trace_profile.txt").write_text(prof.key_averages().table(sort_by="cpu_time_total", row_limit=30))
    return {"seconds": seconds, "rays_per_second": size * size / seconds, "hits": int(result.hit.sum()),
            "stepped_through": int(result.stepped_through.sum()), "unfinished": int(result.unfinished),
            "mean_steps": float(result.steps.mean()), "max_steps": int(result.steps.max())}


def label(model: dict) -> str:
    return f"{model['arch'].upper()} {model['layers']} x {model['width']}"


def sync(field: NeuralField) -> None:
    if field.device.type == "cuda":
        torch.cuda.synchronize(field.device)


def progress(text: str) -> None:
    print(text, flush=True)


def step_profile(dataset, model: dict, batch: int, device: str, out: Path) -> dict:
    """Kernels per eager training step and where the device time goes (``profile.txt``)."""
    from torch.profiler import ProfilerActivity, profile

    config = TrainingConfig(epochs=1, batch_size=batch, checkpoint_every=0, cuda_graph=False)  # eager steps
    trainer = Trainer(dataset, model, config, device=device)
    state = trainer.start(log=False)
    state.shuffle(trainer.device)
    for _ in range(5):
        trainer.step(state)
    steps = 5
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.step(state)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    kernels = sum(1 for event in prof.events() if event.device_type == torch.autograd.DeviceType.CUDA)
    sort = "cuda_time_total" if device.startswith("cuda") else "cpu_time_total"
    (out / "profile.txt").write_text(prof.key_averages().table(sort_by=sort, row_limit=25))
    return {"model": label(model), "batch": batch, "kernels_per_step": kernels / steps}


def sampling(shape, size: dict, device: str) -> dict:
    """The fit's sampling with its geometry on ``device`` (lipsdf's PrimitiveTree) and with libigl on the
    CPU, and how far their distances and signs agree on the same points."""
    def timed(where):  # sample() returns NumPy arrays: the device's work is done when it returns
        started = time.perf_counter()
        data = sample(shape, "signed", n=size["points"], n_test=20_000 if size["points"] > 10_000 else 400, seed=0,
                      device=where)
        return data, time.perf_counter() - started

    sample(shape, "signed", n=2000, n_test=100, seed=0, device=device)  # loads the device's kernels
    data, on_device = timed(device)
    _, on_cpu = timed(None)
    unit = shape.transformed(data.normalization.to_unit)
    points = data.points.astype(np.float64)
    ours, libigl = GroundTruth(unit, device=device), GroundTruth(unit)
    distances = libigl.unsigned_distance(points)
    diagonal = float(np.linalg.norm(np.ptp(points, axis=0)))
    away = distances > 0.01 * diagonal
    signs = (ours.winding_number(points) > 0.5) != (libigl.winding_number(points) > 0.5)
    return {"points": len(points), "device_seconds": on_device, "libigl_seconds": on_cpu,
            "largest_distance_difference_rel": float(np.abs(ours.unsigned_distance(points) - distances).max()
                                                     / diagonal),
            "sign_differences_away": int(signs[away].sum()), "sign_differences_near": int(signs[~away].sum())}


def startup(device: str) -> dict:
    """What any command pays before its work: a new Python process importing torch and starting CUDA."""
    code = "import torch; torch.zeros(1, device=%r).sum().item()" % device
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return {"seconds": time.perf_counter() - started}


def run(smoke: bool, device: str, out: Path, shape_path: Path = BUNNY) -> dict:
    """Every section in turn; a failing section records its error and the others still run, and the
    results are written after each one (a run cut short still leaves what it measured)."""
    out.mkdir(parents=True, exist_ok=True)
    size = sizes(smoke, shape_path)
    started = time.perf_counter()
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                          + (torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"),
               "device": device, "smoke": smoke, "date": time.strftime("%Y-%m-%d")}
    shape = load_shape(size["shape"])
    dataset = sample(shape, "signed", n=size["points"], n_test=20_000 if not smoke else 400, seed=0)
    state: dict = {}

    def fitted():
        results["fit"], state["field"] = fit_cli(size, device)
        return results["fit"]

    def field():
        return NeuralField.load(state["field"], device=device)

    sections = [("startup", lambda: startup(device)),
                ("sampling", lambda: sampling(shape, size, device)),
                ("profile", lambda: step_profile(dataset, size["fit_model"], 8192, device, out)),
                ("training", lambda: training(dataset, size, device, smoke)),
                ("evaluation", lambda: evaluation(size, device)),
                ("precision", lambda: precision(dataset, size["model"], device, size["eager_batch"])),
                ("fit", fitted),
                ("mesh", lambda: mesh_timings(field(), size["resolution"])),
                ("trace", lambda: tracing(field(), size["image"], out)),
                ("accuracy_sweep", lambda: accuracy_sweep(dataset, size, device)),
                ("many", lambda: collection(smoke, device, results.get("fit", {})))]
    for name, measure in sections:
        progress(f"{name} ...")
        since = time.perf_counter()
        try:
            results[name] = measure()
        except Exception as error:  # one broken figure must not cost the others
            results[name] = {"error": "".join(traceback.format_exception_only(error)).strip()[-2000:]}
            traceback.print_exc()
        progress(f"{name}: {time.perf_counter() - since:.1f} s")
        results["total_seconds"] = time.perf_counter() - started
        write(results, out)
    return results


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# GPU benchmark", "",
             f"{results['machine']}, device {results['device']}{' (smoke run)' if results['smoke'] else ''}; "
             f"{results['date']}; one run of `benchmarks/gpu.py`, {results['total_seconds']:.0f} s in all.", "",
             "| figure | value |", "|---|---:|"]
    for name, rows in ((name, FIGURES[name]) for name in FIGURES if name in results):
        section = results[name]
        if isinstance(section, dict) and "error" in section:
            lines.append(f"| {name} | failed: {section['error'].splitlines()[-1][:200]} |")
            continue
        for row in rows(section):
            lines.append(f"| {row[0]} | {row[1]} |")
    (out / "gpu.md").write_text("\n".join(lines) + "\n")


FIGURES = {
    "startup": lambda p: [("a new process: import torch and start the device", f"{p['seconds']:.1f} s")],
    "sampling": lambda s: [
        (f"sampling {s['points']:,} signed points, geometry on the device / by libigl on the CPU",
         f"{s['device_seconds']:.2f} s / {s['libigl_seconds']:.2f} s"),
        ("device geometry against libigl: largest distance difference, sign differences away from (near) the "
         "surface", f"{s['largest_distance_difference_rel']:.1e} of the diagonal, {s['sign_differences_away']} "
         f"({s['sign_differences_near']})")],
    "profile": lambda p: [(f"kernels per eager training step ({p['model']}, batch {p['batch']})",
                           f"{p['kernels_per_step']:.0f}")],
    "training": lambda t: [
        (f"training {t['model']}, eager step, batch {t['eager_batch']}", f"{t['eager_points_per_second']:,.0f} points/s"),
        (f"training {t['model']}, fit's default configuration ({t['precision']}, batch {t['default_batch']}, CUDA graph, "
         f"{t.get('optimiser', 'adam')})", f"{t['default_points_per_second']:,.0f} points/s ({t['speedup']:.1f}x)")]
        + [(f"training {t['fit_model']} (the fit's network), {t['precision']}, batch {t['default_batch']}, CUDA graph, "
            f"{name}", f"{value:,.0f} points/s") for name, value in t.get("fit_model_by_optimiser", {}).items()]
        + [(f"training {name}, float32, CUDA graph, batch {batch}",
            f"{value:,.0f} points/s") for name, by_batch in t["cuda_graph_sweep"].items()
           for batch, value in by_batch.items()],
    "evaluation": lambda e: [(f"evaluation {name}, float32",
                              f"{value:,.0f} points/s") for name, value in e.items()],
    "precision": lambda p: [
        ("pair ratio (float64) after TF32 training", f"{p['pair_ratio_float64_after_tf32_training']:.6f}"),
        ("pair ratio of TF32 evaluations, pairs 1e-3 apart", f"{p['pair_ratio_tf32_evaluation_close_pairs']:.6f}")],
    "fit": lambda f: [
        ("`lipsdf fit` end to end (wall clock, a new process)", f"{f['wall_seconds']:.1f} s "
         f"({', '.join(f'{k} {v:.1f}' for k, v in f['seconds'].items())})"),
        ("fit: Chamfer L1, normal consistency, pair ratio", f"{100 * f['chamfer_l1_rel']:.3f}%, "
         f"{f['normal_consistency']:.4f}, {f['max_pair_ratio']:.4f}")],
    "mesh": lambda m: [
        ("mesh, pruned", f"{m['pruned']['seconds']:.2f} s, {m['pruned']['evaluations']:,} evaluations"),
        ("mesh, dense", f"{m['dense']['seconds']:.2f} s, {m['dense']['evaluations_per_second']:,.0f} evaluations/s"),
        ("dense grid evaluation on the device (no marching)",
         f"{m['dense_evaluation']['seconds']:.2f} s, {m['dense_evaluation']['evaluations_per_second']:,.0f} evaluations/s"),
        ("pruned mesh identical to dense", str(m["identical"]))],
    "trace": lambda r: [("sphere tracing", f"{r['rays_per_second']:,.0f} rays/s, {r['stepped_through']} through "
                                           f"the surface, {r['mean_steps']:.1f} steps per ray")],
    "many": lambda m: [
        (f"`lipsdf fit-many` on {m['shapes']} shapes (stacked training)", f"{m['wall_seconds']:.0f} s, "
         f"{m['shapes_per_minute']:.1f} shapes a minute, {len(m['failed'])} failed")]
        + ([("bunny in the collection / alone: Chamfer L1, normal consistency",
             f"{100 * m['bunny']['stacked']['chamfer_l1_rel']:.3f}% / "
             f"{100 * m['bunny']['alone']['chamfer_l1_rel']:.3f}%, "
             f"{m['bunny']['stacked']['normal_consistency']:.4f} / {m['bunny']['alone']['normal_consistency']:.4f}")]
           if "bunny" in m else []),
    "accuracy_sweep": lambda rows: [(f"bunny training, batch {row['batch']} x {row['epochs']} epochs, lr "
                                     f"{row['lr']:.3g}, {row['precision']}, {row.get('optimiser', 'adam')}",
                                     f"{row['seconds']:.1f} s, test MAE {100 * row['mae_rel']:.3f}%")
                                    for row in rows],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, on the CPU: checks the code paths")
    parser.add_argument("--shape", type=Path, default=BUNNY, help="the shape to fit (default: the bunny)")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --smoke")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results, "
                                                                "or a temporary folder with --smoke)")
    args = parser.parse_args()
    device = args.device or ("cpu" if args.smoke else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.exit(2, "gpu.py: no CUDA device here; run it on a GPU machine, or with --smoke\n")
    if args.out is None and args.smoke:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(run(True, device, Path(folder), args.shape), indent=2))
        return
    out = args.out or RESULTS
    run(args.smoke, device, out, args.shape)
    print((out / "gpu.md").read_text())


if __name__ == "__main__":
    main()
