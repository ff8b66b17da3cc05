"""GPU benchmark: every figure of the GPU-speed issue, in one process, in a few minutes on one H100 or H200.

Run by hand on a machine with CUDA (not part of the tests); needs ../shared/data for the bunny:

    .venv/bin/python benchmarks/gpu.py              # writes benchmarks/results/gpu.json and gpu.md
    .venv/bin/python benchmarks/gpu.py --smoke      # the same code paths, tiny, on the CPU (a test runs this)

Figures, all from this one run:

* training throughput of SLL 20 x 128, points per second: the eager step at batch 4096 (no CUDA graph),
  and the fit's default GPU configuration (CUDA-graph step, its batch size);
* precision: the largest pair ratio, in float64, of a field trained with TF32 matrix products, and the
  largest pair ratio of TF32 *evaluations* of the same field on close pairs (what inference in TF32 would
  break);
* ``lipsdf fit bunny`` end to end: seconds per stage, Chamfer, normal consistency, pair ratio;
* ``lipsdf mesh --res 512``: pruned and dense seconds, network evaluations per second, and whether the
  pruned mesh equals the dense one;
* sphere tracing at 1024 x 1024: rays per second, and the rays that stepped through the surface.

``--smoke`` shrinks every size (a builtin sphere, a 2 x 16 network, a 32^3 grid, a 32 x 32 image) and runs
on the CPU unless ``--device`` says otherwise; it writes to ``--out`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lipsdf.evaluate import lipschitz_ratio
from lipsdf.field import NeuralField
from lipsdf.geometry.io import load_shape
from lipsdf.pipeline import fit, fit_defaults
from lipsdf.query import contour, orbit_camera, trace_image
from lipsdf.query.trace import shape_framing
from lipsdf.sampling import sample
from lipsdf.training import Trainer, TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
BUNNY = ROOT.parent / "shared" / "data" / "meshes" / "stanford-bunny.obj"
RESULTS = ROOT / "benchmarks" / "results"


def sizes(smoke: bool) -> dict:
    if smoke:
        return {"shape": "builtin:sphere", "model": {"arch": "sll", "dim": 3, "layers": 2, "width": 16},
                "points": 4096, "eager_batch": 512, "resolution": 32, "image": 32,
                "fit": {"quick": True, "sampling": {"n": 3000, "n_test": 400}, "training": {"epochs": 2},
                        "resolution": 32, "image_size": 32,
                        "evaluation": {"n_uniform": 400, "n_near": 400, "n_pairs": 400, "n_surface": 400}}}
    return {"shape": str(BUNNY), "model": {"arch": "sll", "dim": 3, "layers": 20, "width": 128},
            "points": 1_000_000, "eager_batch": 4096, "resolution": 512, "image": 1024, "fit": {}}


def throughput(dataset, model: dict, batch: int, lr: float, device: str, cuda_graph: bool) -> float:
    """Training points per second over the second of two epochs (the first pays warm-up and capture)."""
    records = []
    config = TrainingConfig(epochs=2, batch_size=batch, lr=lr, checkpoint_every=0, cuda_graph=cuda_graph)
    Trainer(dataset, model, config, device=device, callback=records.append).run()
    return len(dataset.points) / (records[1]["seconds"] - records[0]["seconds"])


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
    a, b = out["pruned"].pop("mesh"), out["dense"].pop("mesh")
    out["identical"] = bool(a is not None and b is not None and np.array_equal(a.faces, b.faces)
                            and np.allclose(a.vertices, b.vertices, rtol=0, atol=1e-12))
    return out


def tracing(field: NeuralField, size: int) -> dict:
    centre, radius = shape_framing(field)
    camera = orbit_camera(centre, 2.5 * radius, width=size, height=size)
    trace_image(field, orbit_camera(centre, 2.5 * radius, width=16, height=16))  # warm up
    sync(field)
    started = time.perf_counter()
    result = trace_image(field, camera)
    sync(field)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rays_per_second": size * size / seconds, "hits": int(result.hit.sum()),
            "stepped_through": int(result.stepped_through.sum()), "unfinished": int(result.unfinished)}


def sync(field: NeuralField) -> None:
    if field.device.type == "cuda":
        torch.cuda.synchronize(field.device)


def run(smoke: bool, device: str, out: Path) -> dict:
    size = sizes(smoke)
    started = time.perf_counter()
    shape = load_shape(size["shape"])
    dataset = sample(shape, "signed", n=size["points"], n_test=2000, seed=0)
    gpu = fit_defaults(3, device=device).training
    results = {"machine": f"{platform.machine()}, torch {torch.__version__}, "
                          + (torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"),
               "device": device, "smoke": smoke, "date": time.strftime("%Y-%m-%d")}
    eager = throughput(dataset, size["model"], size["eager_batch"], 1e-2, device, cuda_graph=False)
    default_batch = size["eager_batch"] if smoke else gpu["batch_size"]
    lr = TrainingConfig(**{key: value for key, value in gpu.items() if key != "epochs"}).learning_rate
    graphed = throughput(dataset, size["model"], default_batch, lr, device, cuda_graph=True)
    results["training"] = {"eager_batch": size["eager_batch"], "eager_points_per_second": eager,
                           "default_batch": default_batch, "default_points_per_second": graphed,
                           "speedup": graphed / eager}
    results["precision"] = precision(dataset, size["model"], device, default_batch)
    with tempfile.TemporaryDirectory() as folder:
        fitted = fit(size["shape"], folder, device=device, **size["fit"])
        metrics = fitted.to_dict()
        results["fit"] = {"seconds": metrics["seconds"], "chamfer_l1_rel": metrics["surface"]["chamfer_l1_rel"],
                          "normal_consistency": metrics["surface"]["normal_consistency"],
                          "max_pair_ratio": metrics["lipschitz"]["max_ratio"]}
        field = fitted.field
    results["mesh"] = mesh_timings(field, size["resolution"])
    results["trace"] = tracing(field, size["image"])
    results["total_seconds"] = time.perf_counter() - started
    write(results, out)
    return results


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    t, p, f, m, r = (results[key] for key in ("training", "precision", "fit", "mesh", "trace"))
    lines = ["# GPU benchmark", "",
             f"{results['machine']}, device {results['device']}{' (smoke run)' if results['smoke'] else ''}; "
             f"{results['date']}; one run of `benchmarks/gpu.py`, {results['total_seconds']:.0f} s in all.", "",
             "| figure | value |", "|---|---:|",
             f"| training, eager step, batch {t['eager_batch']} | {t['eager_points_per_second']:,.0f} points/s |",
             f"| training, fit's default ({t['default_batch']}, CUDA graph) | "
             f"{t['default_points_per_second']:,.0f} points/s ({t['speedup']:.1f}x) |",
             f"| pair ratio (float64) after TF32 training | {p['pair_ratio_float64_after_tf32_training']:.6f} |",
             f"| pair ratio of TF32 evaluations, pairs 1e-3 apart | "
             f"{p['pair_ratio_tf32_evaluation_close_pairs']:.6f} |",
             f"| `lipsdf fit` end to end | {sum(f['seconds'].values()):.1f} s "
             f"({', '.join(f'{k} {v:.1f}' for k, v in f['seconds'].items())}) |",
             f"| fit: Chamfer L1, normal consistency, pair ratio | {100 * f['chamfer_l1_rel']:.3f}%, "
             f"{f['normal_consistency']:.3f}, {f['max_pair_ratio']:.4f} |",
             f"| mesh, pruned | {m['pruned']['seconds']:.2f} s, {m['pruned']['evaluations']:,} evaluations |",
             f"| mesh, dense | {m['dense']['seconds']:.2f} s, "
             f"{m['dense']['evaluations_per_second']:,.0f} evaluations/s |",
             f"| pruned mesh identical to dense | {m['identical']} |",
             f"| sphere tracing | {r['rays_per_second']:,.0f} rays/s, {r['stepped_through']} through the surface |"]
    (out / "gpu.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, on the CPU: checks the code paths")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --smoke")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results, "
                                                                "or a temporary folder with --smoke)")
    args = parser.parse_args()
    device = args.device or ("cpu" if args.smoke else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.exit(2, "gpu.py: no CUDA device here; run it on a GPU machine, or with --smoke\n")
    if args.out is None and args.smoke:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(run(True, device, Path(folder)), indent=2))
        return
    results = run(args.smoke, device, args.out or RESULTS)
    print((Path(args.out or RESULTS) / "gpu.md").read_text())


if __name__ == "__main__":
    main()
