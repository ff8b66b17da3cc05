"""The ``lipsdf`` command. Each subcommand maps to one stage of the pipeline.

User errors (:class:`~lipsdf.errors.LipsdfError`, bad options) print one line
on stderr and exit with status 2; no partial output file is left behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from lipsdf import __version__
from lipsdf.errors import InputFileError, LipsdfError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad options in one line, like every other lipsdf error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _source_info(shape_arg: str) -> dict:
    from lipsdf.files import sha256_of_file
    from lipsdf.geometry.primitives import BUILTIN_PREFIX

    if shape_arg.startswith(BUILTIN_PREFIX):
        return {"path": shape_arg}
    path = Path(shape_arg)
    return {"path": str(path.resolve()), "sha256": sha256_of_file(path)}


def _describe(shape) -> str:
    from lipsdf.geometry.shapes import PointCloud, Polyline, TriangleMesh

    if isinstance(shape, TriangleMesh):
        return f"mesh, {len(shape.vertices)} vertices, {len(shape.faces)} triangles"
    if isinstance(shape, Polyline):
        closed = "closed" if shape.is_closed else "open"
        return (f"{shape.dim}D polyline ({closed}), {len(shape.vertices)} vertices, {len(shape.edges)} segments, "
                f"{shape.n_components} component(s)")
    assert isinstance(shape, PointCloud)
    return f"point cloud, {len(shape.points)} points, {'with' if shape.normals is not None else 'without'} normals"


def _check_output(path: Path, suffixes: tuple[str, ...], what: str) -> None:
    if path.suffix.lower() not in suffixes:
        raise InputFileError(f"{what} {path} must end in {' or '.join(suffixes)}")
    if not path.parent.is_dir():
        raise InputFileError(f"output directory {path.parent} does not exist; create it first")


# option (argparse dest) -> config field, for SamplingConfig, TrainingConfig, the model config, EvaluationConfig
_SAMPLING_OPTIONS = {"n": "n", "n_test": "n_test", "n_surface": "n_surface", "uniform_fraction": "uniform_fraction",
                     "sigma": "near_sigmas", "padding": "padding", "band": "band"}
_TRAINING_OPTIONS = {name: name for name in ("epochs", "batch_size", "lr", "margin", "final_margin", "lam", "recipe",
                                             "loss", "eikonal", "compile")}
_MODEL_OPTIONS = {name: name for name in ("arch", "layers", "width")}
_EVALUATION_OPTIONS = {"eval_n_uniform": "n_uniform", "eval_n_near": "n_near", "eval_pairs": "n_pairs",
                       "eval_n_surface": "n_surface"}


def _given(args: argparse.Namespace, options: dict[str, str]) -> dict:
    """Config fields from the options present in ``args`` (lists as tuples). fit's pass-through options
    are absent unless given, so only those replace its defaults."""
    given = vars(args)
    return {field: tuple(given[option]) if isinstance(given[option], list) else given[option]
            for option, field in options.items() if option in given}


def cmd_sample(args: argparse.Namespace) -> int:
    from lipsdf.geometry.io import load_shape, shape_name
    from lipsdf.render import plot_dataset
    from lipsdf.sampling import SamplingConfig, check_mode, sample

    output = Path(args.output or f"{shape_name(args.shape)}_{args.mode}.npz")
    _check_output(output, (".npz",), "dataset file")
    if args.preview:
        _check_output(Path(args.preview), (".png",), "preview")
    config = SamplingConfig(**_given(args, _SAMPLING_OPTIONS), seed=args.seed)
    started = time.perf_counter()
    shape = load_shape(args.shape, kind=args.kind)
    check_mode(shape, args.mode)
    _say(args, f"{args.shape}: {_describe(shape)}")
    dataset = sample(shape, args.mode, config, source=_source_info(args.shape), quiet=args.quiet)
    dataset.save(output)
    counts = dataset.metadata["counts"]
    labels = {k: v for k, v in counts.items() if k not in ("points", "surface", "test")}
    detail = f" ({', '.join(f'{v} {k}' for k, v in labels.items())})" if labels else ""
    _say(args, f"{args.mode} dataset: {counts['points']} points{detail}, {counts['surface']} surface samples, "
               f"{counts['test']} test points [{time.perf_counter() - started:.1f} s]")
    _say(args, f"wrote {output}")
    if args.preview:
        _say(args, f"wrote {plot_dataset(dataset, args.preview)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from lipsdf.dataset import PointDataset
    from lipsdf.training import Trainer, TrainingConfig, default_model_config

    dataset_path = Path(args.dataset)
    output = Path(args.output or dataset_path.with_suffix(".pt").name)
    _check_output(output, (".pt",), "field file")
    log = Path(args.log) if args.log else output.with_suffix(".jsonl")
    _check_output(log, (".jsonl", ".csv"), "training log")
    if args.preview:
        _check_output(Path(args.preview), (".png",), "preview")
    config = TrainingConfig(**_given(args, _TRAINING_OPTIONS), seed=args.seed,
                            checkpoint_every=args.checkpoint_every)
    dataset = PointDataset.load(dataset_path)
    model_config = default_model_config(dataset, args.arch, args.layers, args.width)
    trainer = Trainer(dataset, model_config, config, device=args.device, output=output, log=log,
                      preview=args.preview, quiet=args.quiet)
    _say(args, f"{dataset_path}: {dataset.mode} dataset, {len(dataset.points)} points ({dataset.kind}); "
               f"training {model_config['arch']} {model_config['layers']} x {model_config['width']} "
               f"with {trainer.loss_name} on {trainer.device}")
    field = trainer.run()
    final = field.summary["final"]
    sign = f", sign accuracy {100 * final['sign_accuracy']:.2f}%" if "sign_accuracy" in final else ""
    _say(args, f"{final['epoch']} epochs [{final['seconds']:.1f} s]: test mean error {final['mae']:.4g} "
               f"({100 * final['mae_rel']:.2f}% of the diagonal), max {final['max_error']:.4g}{sign}")
    _say(args, f"wrote {output} and {log}")
    return 0


# --------------------------------------------------------------------------- queries on a field


def _load_field(args: argparse.Namespace):
    from lipsdf.field import NeuralField, resolve_device

    return NeuralField.load(args.field, device=resolve_device(args.device))


def _field_stem(args: argparse.Namespace) -> str:
    return Path(args.field).with_suffix("").name


def _iso_levels(args: argparse.Namespace, field, spacing: float) -> list[float]:
    """The levels asked for (``--iso``, ``--iso-range``), or 0 (signed) / one grid cell (unsigned)."""
    import numpy as np

    from lipsdf.query.contour import default_level

    levels = list(args.iso or [])
    if getattr(args, "iso_range", None):
        low, high, count = args.iso_range
        if not float(count).is_integer() or count < 1:
            raise LipsdfError(f"--iso-range LO HI N needs a whole number N >= 1, got {count:g}")
        levels += np.linspace(low, high, int(count)).tolist()
    if not levels:
        return [default_level(field, args.res, args.bounds)]
    if field.kind == "unsigned" and min(levels) <= 0:
        raise LipsdfError(f"an unsigned field is >= 0 and has no crossing at {min(levels):g}; "
                          f"use a small positive --iso (one grid cell here is {spacing:.3g})")
    return levels


def _level_paths(output: Path, levels: list[float]) -> list[Path]:
    if len(levels) == 1:
        return [output]
    return [output.with_name(f"{output.stem}_iso{level:g}{output.suffix}") for level in levels]


def cmd_mesh(args: argparse.Namespace) -> int:
    from lipsdf.geometry.io import MESH_FORMATS, save_shape
    from lipsdf.query.contour import DEFAULT_RESOLUTION, contour
    from lipsdf.query.grid import field_grid

    field = _load_field(args)
    suffixes = MESH_FORMATS if field.dim == 3 else (".obj", ".mesh")
    output = Path(args.output or f"{_field_stem(args)}_{'mesh' if field.dim == 3 else 'contour'}.obj")
    _check_output(output, suffixes, "mesh file" if field.dim == 3 else "polyline file")
    resolution = args.res or DEFAULT_RESOLUTION[field.dim]
    levels = _iso_levels(args, field, field_grid(field, resolution, args.bounds).spacing)
    if not args.dense and not field.is_lipschitz:
        _say(args, f"a {field.arch} field is not 1-Lipschitz: evaluating the dense grid")
    result = contour(field, levels, resolution, args.bounds, dense=args.dense, batch_size=args.batch_size,
                     quiet=args.quiet)
    grid = result.grid
    _say(args, f"{'x'.join(map(str, grid.shape))} grid, cell {grid.spacing:.4g}: {result.evaluations} network "
               f"evaluations ({100 * result.evaluations / grid.size:.1f}% of the dense grid) [{result.seconds:.1f} s]")
    if all(item.shape is None for item in result.contours):
        low, high = result.value_range
        raise LipsdfError(f"no level set to write: the field ranges over [{low:.4g}, {high:.4g}] in the box, "
                          f"which holds none of the levels {', '.join(f'{v:g}' for v in levels)}")
    for item, path in zip(result.contours, _level_paths(output, levels)):
        if item.shape is None:
            _say(args, f"iso {item.iso:g}: empty, nothing written")
            continue
        save_shape(item.shape, path)
        what = (f"{len(item.shape.vertices)} vertices, {len(item.shape.faces)} triangles" if field.dim == 3 else
                f"{len(item.shape.edges)} segments, {item.shape.n_components} curve(s)")
        _say(args, f"iso {item.iso:g}: {what}; wrote {path}")
    return 0


def cmd_sample_surface(args: argparse.Namespace) -> int:
    from lipsdf.geometry.io import save_points
    from lipsdf.query.project import sample_surface

    output = Path(args.output or f"{_field_stem(args)}_surface.ply")
    _check_output(output, (".ply", ".xyz", ".txt", ".npz"), "points file")
    field = _load_field(args)
    level = 0.0 if args.iso is None else args.iso
    started = time.perf_counter()
    samples = sample_surface(field, args.n, level, seed=args.seed, repulsion_steps=args.repulsion_steps,
                             resolution=args.res, batch_size=args.batch_size)
    save_points(samples.points, output, samples.normals)
    _say(args, f"{len(samples.points)} points on iso {level:g}: largest |f - iso| {samples.max_residual:.3g} "
               f"[{time.perf_counter() - started:.1f} s]; wrote {output}")
    return 0


def cmd_skeleton(args: argparse.Namespace) -> int:
    from lipsdf.geometry.io import save_points
    from lipsdf.query.skeleton import skeleton

    output = Path(args.output or f"{_field_stem(args)}_skeleton.ply")
    _check_output(output, (".ply", ".xyz", ".txt", ".npz"), "points file")
    field = _load_field(args)
    started = time.perf_counter()
    result = skeleton(field, args.res, args.threshold, refine=not args.no_refine, bounds=args.bounds,
                      batch_size=args.batch_size, quiet=args.quiet)
    if len(result.points) == 0:
        raise LipsdfError(f"no skeleton point found at --threshold {args.threshold:g}; raise it (towards 1) "
                          "or the resolution")
    save_points(result.points, output, scalars={"radius": result.radii})
    _say(args, f"{len(result.points)} skeleton points, medial radii {result.radii.min():.4g} to "
               f"{result.radii.max():.4g}, {result.evaluations} network evaluations "
               f"[{time.perf_counter() - started:.1f} s]; wrote {output}")
    return 0


def _points_2d(path: Path):
    """The x, y columns of a points file written by lipsdf (.xyz/.txt, .ply, .npz), to draw over a 2D map."""
    import numpy as np

    from lipsdf.geometry.io import load_shape

    if not path.is_file():
        raise InputFileError(f"no such points file: {path}")
    try:
        if path.suffix.lower() in (".xyz", ".txt"):
            points = np.atleast_2d(np.loadtxt(path, ndmin=2))
        elif path.suffix.lower() == ".npz":
            with np.load(path) as data:
                points = data["points"]
        else:
            points = load_shape(path, kind="pointcloud").points
    except (ValueError, KeyError) as exc:
        raise InputFileError(f"cannot read points from {path}: {exc}") from None
    if points.ndim != 2 or points.shape[1] < 2:
        raise InputFileError(f"{path} holds no 2D points")
    return points[:, :2]


def cmd_render(args: argparse.Namespace) -> int:
    import numpy as np

    from lipsdf.render import plot_field_map, save_image

    output = Path(args.output or f"{_field_stem(args)}.png")
    _check_output(output, (".png",), "image")
    for extra in (args.depth, args.normal_map):
        if extra:
            _check_output(Path(extra), (".png",), "image")
    field = _load_field(args)
    if field.dim == 2:
        overlays = [_points_2d(Path(name)) for name in args.overlay or []]
        stats = plot_field_map(field, output, resolution=args.res or 512, levels=args.iso, bounds=args.bounds,
                               overlays=overlays)
        _say(args, f"gradient norm over the map: min {stats['gradient_norm_min']:.3f}, median "
                   f"{stats['gradient_norm_median']:.3f}, max {stats['gradient_norm_max']:.3f}; wrote {output}")
        return 0
    from lipsdf.query.trace import Camera, orbit_camera, shade, shape_framing, trace_image

    width, height = args.size
    centre, radius = shape_framing(field, batch_size=args.batch_size)
    if args.eye is not None:
        camera = Camera(args.eye, args.target if args.target is not None else centre, args.up, args.fov, width, height)
    else:
        camera = orbit_camera(args.target if args.target is not None else centre, radius, args.azimuth,
                              args.elevation, args.up, args.fov, width, height, args.distance)
    result = trace_image(field, camera, max_steps=args.max_steps, batch_size=args.batch_size)
    save_image(shade(result, camera), output)
    written = [output]
    if args.depth:
        depth = result.depth
        near, far = (np.nanmin(depth), np.nanmax(depth)) if result.hit.any() else (0.0, 1.0)
        image = np.where(result.hit, 0.1 + 0.8 * (depth - near) / max(far - near, 1e-12), 1.0)
        written.append(save_image(np.nan_to_num(image, nan=1.0), args.depth))
    if args.normal_map:
        normals = np.where(result.hit[..., None], 0.5 * (np.nan_to_num(result.normals) + 1.0), 1.0)
        written.append(save_image(normals, args.normal_map))
    through = int(result.stepped_through.sum())
    _say(args, f"{width} x {height} rays: {100 * result.hit.mean():.1f}% hit, {result.mean_steps:.1f} steps per ray "
               f"on average (max {int(result.steps.max())}), {through} stepped through the surface, "
               f"{result.unfinished} unfinished [{result.seconds:.1f} s, {result.rays_per_second:,.0f} rays/s]")
    _say(args, f"wrote {', '.join(map(str, written))}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from lipsdf.evaluate import EvaluationConfig, evaluate_field, metrics_table
    from lipsdf.files import atomic_output
    from lipsdf.geometry.io import load_shape

    output = Path(args.output or f"{_field_stem(args)}_metrics.json")
    _check_output(output, (".json",), "metrics file")
    config = EvaluationConfig(n_uniform=args.n_uniform, n_near=args.n_near, n_pairs=args.pairs,
                              n_surface=args.n_surface, resolution=args.res, seed=args.seed)
    field = _load_field(args)
    shape = load_shape(args.against, kind=args.kind)
    metrics = evaluate_field(field, shape, config, batch_size=args.batch_size)
    metrics["field"], metrics["against"] = str(args.field), str(args.against)
    with atomic_output(output) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    _say(args, f"{args.field} ({field.kind} {field.arch} field) against {args.against} ({_describe(shape)}), "
               f"diagonal {metrics['diagonal']:.4g} [{metrics['seconds']:.1f} s]")
    _say(args, metrics_table(metrics))
    _say(args, f"wrote {output}")
    return 0




def cmd_fit(args: argparse.Namespace) -> int:
    from lipsdf.evaluate import metrics_table
    from lipsdf.geometry.io import shape_name
    from lipsdf.pipeline import fit

    seed = {"seed": args.seed}
    output = Path(args.output or f"{shape_name(args.shape)}_fit")
    result = fit(args.shape, output, quick=args.quick, mode=args.mode, kind=args.kind,
                 sampling={**_given(args, _SAMPLING_OPTIONS), **seed},
                 training={**_given(args, _TRAINING_OPTIONS), **seed},
                 model=_given(args, _MODEL_OPTIONS), evaluation={**_given(args, _EVALUATION_OPTIONS), **seed},
                 resolution=args.res, image_size=args.image_size, device=args.device, quiet=args.quiet,
                 say=lambda message: _say(args, message))
    metrics = result.metrics
    _say(args, metrics_table(metrics))
    seconds = metrics["seconds"]
    _say(args, f"done in {seconds['total']:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items() if k != 'total')}); "
               f"everything is in {output}/ (metrics.json, {result.files['picture'].name}, ...)")
    return 0


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message)


def _default(value, fit: bool) -> dict:
    """argparse keywords for an option's default: its own for sample/train; absent for fit, whose
    defaults depend on the shape (``lipsdf.pipeline.fit_defaults``) and which passes on only what was given."""
    return {"default": argparse.SUPPRESS} if fit else {"default": value}


def _sampling_arguments(p: argparse.ArgumentParser, fit: bool = False) -> None:
    from lipsdf.sampling import SamplingConfig

    d = SamplingConfig()
    by_fit = "chosen by fit" if fit else None
    p.add_argument("-n", type=_positive_int, **_default(d.n, fit),
                   help=f"training points (default: {by_fit or d.n})")
    p.add_argument("--n-test", type=_positive_int, **_default(d.n_test, fit),
                   help=f"test points (default: {by_fit or d.n_test})")
    p.add_argument("--n-surface", type=_positive_int, **_default(None, fit), help="surface samples kept (default: n/4)")
    p.add_argument("--uniform-fraction", type=float, **_default(d.uniform_fraction, fit),
                   help=f"share of points uniform in the box, the rest near the surface (default: {d.uniform_fraction})")
    p.add_argument("--sigma", type=float, nargs="+", **_default(list(d.near_sigmas), fit), metavar="S",
                   help="near-surface noise scales, in units of the normalised box [-1, 1] "
                        f"(default: {' '.join(map(str, d.near_sigmas))})")
    p.add_argument("--padding", type=float, **_default(d.padding, fit),
                   help=f"room around the shape: its largest half-side maps to 1/(1+padding) (default: {d.padding})")
    p.add_argument("--band", type=float, nargs=2, metavar=("LO", "HI"), **_default(None, fit),
                   help="signed mode: drop points with winding number in (LO, HI), e.g. 0.3 0.7 for open or noisy input")


def _training_arguments(p: argparse.ArgumentParser, fit: bool = False) -> None:
    from lipsdf.nn.models import ARCHITECTURES
    from lipsdf.training import RECIPES, TrainingConfig

    d = TrainingConfig()
    by_fit = "chosen by fit" if fit else None
    p.add_argument("--arch", choices=ARCHITECTURES, **_default(None, fit),
                   help="network: sll (default; mlp for sal datasets), ortho, mlp or siren")
    p.add_argument("--layers", type=_positive_int, **_default(None, fit),
                   help="layers (default: 20 for sll, 8 ortho/mlp, 5 siren)")
    p.add_argument("--width", type=_positive_int, **_default(None, fit), help="width (default: 128; 256 for mlp, siren)")
    p.add_argument("--epochs", type=_positive_int, **_default(d.epochs, fit),
                   help=f"passes over the data (default: {by_fit or d.epochs})")
    p.add_argument("--batch-size", type=_positive_int, **_default(d.batch_size, fit),
                   help=f"points per step (default: {by_fit or d.batch_size})")
    p.add_argument("--lr", type=float, **_default(d.lr, fit), help=f"Adam learning rate (default: {by_fit or d.lr})")
    p.add_argument("--margin", type=float, **_default(d.margin, fit),
                   help=f"hKR margin in unit-box units (default: {d.margin})")
    p.add_argument("--final-margin", type=float, **_default(None, fit),
                   help="lipsdf recipe: margin at the end of training (default: margin / 4)")
    p.add_argument("--lam", type=float, **_default(d.lam, fit), help=f"hKR hinge weight (default: {d.lam:g})")
    p.add_argument("--recipe", choices=RECIPES, **_default(d.recipe, fit),
                   help="lipsdf: margin shrinks, lambda ramps up, lr decays (default); paper: the paper's constants")
    p.add_argument("--loss", choices=("hkr", "fit", "sal", "sald"), **_default(None, fit),
                   help="default: from the dataset's mode (signed/unsigned: hkr, dist: fit, sal: sald)")
    p.add_argument("--eikonal", type=float, **_default(d.eikonal, fit),
                   help=f"weight of the eikonal term when fitting distances (default: {d.eikonal})")
    p.add_argument("--compile", action="store_true", **_default(False, fit),
                   help="torch.compile the training steps (about 1.2x faster on CPU after a few seconds of "
                        "compilation; hkr, sal and fit without eikonal term)")


def _evaluation_arguments(p: argparse.ArgumentParser, fit: bool = False) -> None:
    from lipsdf.evaluate import EvaluationConfig

    d = EvaluationConfig()
    prefix = "eval-" if fit else ""  # fit also has sample's --n-surface
    by_fit = "; quick: 5000" if fit else ""
    p.add_argument(f"--{prefix}n-uniform", type=_positive_int, **_default(d.n_uniform, fit),
                   help=f"points uniform in the field's box (default: {d.n_uniform}{by_fit})")
    p.add_argument(f"--{prefix}n-near", type=_positive_int, **_default(d.n_near, fit),
                   help=f"points near the surface (default: {d.n_near}{by_fit})")
    p.add_argument(f"--{prefix}pairs", type=_positive_int, **_default(d.n_pairs, fit),
                   help=f"random pairs for the Lipschitz ratio (default: {d.n_pairs}{'; quick: 20000' if fit else ''})")
    p.add_argument(f"--{prefix}n-surface", type=_positive_int, **_default(d.n_surface, fit),
                   help=f"samples on each surface for Chamfer and Hausdorff (default: {d.n_surface}"
                        f"{'; quick: 20000' if fit else ''})")


def build_parser() -> argparse.ArgumentParser:
    from lipsdf.dataset import MODES
    from lipsdf.geometry.shapes import KINDS

    parser = _Parser(prog="lipsdf", description="1-Lipschitz neural distance fields.")
    parser.add_argument("--version", action="version", version=f"lipsdf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("sample", help="sample a training dataset (.npz) around a shape",
                            description="Sample training points around a shape file (or builtin:NAME) "
                                        "and write a dataset .npz.")
    p.add_argument("shape", help="shape file (.obj .ply .off .stl .mesh .xyz .txt .npz .geojson) or builtin:NAME")
    p.add_argument("--mode", choices=MODES, default="signed", help="what the dataset is for (default: signed)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--kind", choices=KINDS, default=None, help="override the detected kind of shape")
    _sampling_arguments(p)
    p.add_argument("-o", "--output", default=None, help="dataset file (default: NAME_MODE.npz)")
    p.add_argument("--preview", default=None, metavar="PNG", help="also write a picture of the samples")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing, show no progress bar")
    p.set_defaults(func=cmd_sample)

    from lipsdf.training import TrainingConfig

    defaults = TrainingConfig()
    p = commands.add_parser("train", help="train a field (.pt) on a dataset",
                            description="Train a neural distance field on a dataset made by `lipsdf sample`. "
                                        "The loss follows the dataset's mode: hKR for signed and unsigned "
                                        "datasets, a distance fit for dist, SAL/SALD for sal.")
    p.add_argument("dataset", help="dataset file (.npz) from `lipsdf sample`")
    _training_arguments(p)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, metavar="K",
                   help=f"write the field every K epochs, 0 for only at the end (default: {defaults.checkpoint_every})")
    p.add_argument("--log", default=None, help="per-epoch log, .jsonl or .csv (default: FIELD.jsonl)")
    p.add_argument("--preview", default=None, metavar="PNG",
                   help="picture of the field at the end and, as PNG_eEPOCH.png, at each checkpoint")
    p.add_argument("-o", "--output", default=None, help="field file (default: DATASET.pt)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing, show no progress bar")
    p.set_defaults(func=cmd_train)
    _add_query_commands(commands)
    _add_pipeline_commands(commands)
    return parser


def _add_pipeline_commands(commands) -> None:
    from lipsdf.dataset import MODES
    from lipsdf.geometry.shapes import KINDS

    p = commands.add_parser("fit", help="shape to field in one command: sample, train, contour, render, eval",
                            description="Fit a 1-Lipschitz distance field to a shape: sample training points, "
                                        "train, extract the contour, render a picture and evaluate against the "
                                        "shape. Defaults give a good field in about 10 minutes for a 3D mesh on "
                                        "a 2-core CPU (3 for a 2D outline); --quick gives a preview in about one. "
                                        "The sample and train options pass through.")
    p.add_argument("shape", help="shape file (.obj .ply .off .stl .mesh .xyz .txt .npz .geojson) or builtin:NAME")
    p.add_argument("-o", "--output", default=None, help="output folder, made if missing (default: NAME_fit)")
    p.add_argument("--quick", action="store_true", help="a preview in about a minute: fewer points and epochs")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="signed (default when the shape has an inside), unsigned (default otherwise), "
                        "or dist/sal for the baselines")
    p.add_argument("--kind", choices=KINDS, default=None, help="override the detected kind of shape")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling and training (default: 0)")
    p.add_argument("--res", type=_positive_int, default=None,
                   help="contour grid, vertices along the longest side (default: 192 in 3D, 512 in 2D; "
                        "quick: 96, 256)")
    p.add_argument("--image-size", type=_positive_int, default=None,
                   help="3D picture side in pixels (default: 512; quick: 256)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing, show no progress bar")
    group = p.add_argument_group("sampling (as in `lipsdf sample`)")
    _sampling_arguments(group, fit=True)
    group = p.add_argument_group("training (as in `lipsdf train`)")
    _training_arguments(group, fit=True)
    group = p.add_argument_group("evaluation (as in `lipsdf eval`)")
    _evaluation_arguments(group, fit=True)
    p.set_defaults(func=cmd_fit)

    p = commands.add_parser("eval", help="measure a field against the shape it approximates",
                            description="Measure a field against ground truth: distance errors and sign accuracy "
                                        "on uniform and near-surface points, gradient norms, the largest "
                                        "|f(x) - f(y)| / |x - y| over random pairs, how often |f| exceeds the true "
                                        "distance; and Chamfer, Hausdorff and normal consistency between the "
                                        "field's contour and the shape. Prints a table and writes JSON.")
    _field_options(p, bounds=False)
    p.add_argument("--against", required=True, metavar="SHAPE",
                   help="the ground-truth shape file or builtin:NAME (point clouds: distances to the points)")
    p.add_argument("--kind", choices=KINDS, default=None, help="override the detected kind of shape")
    _evaluation_arguments(p)
    p.add_argument("--res", type=_positive_int, default=None, help="contour grid (default: 128 in 3D, 512 in 2D)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("-o", "--output", default=None, help="metrics file, .json (default: FIELD_metrics.json)")
    p.set_defaults(func=cmd_eval)


def _field_options(p: argparse.ArgumentParser, bounds: bool = True) -> None:
    from lipsdf.field import DEFAULT_BATCH_SIZE

    p.add_argument("field", help="field file (.pt) from `lipsdf train`")
    if bounds:
        p.add_argument("--bounds", type=float, nargs="+", default=None, metavar="V",
                       help="box to work in, world units: xmin ymin [zmin] xmax ymax [zmax] (default: the field's box)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE,
                   help=f"points per network call (default: {DEFAULT_BATCH_SIZE}; more on a GPU)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing, show no progress bar")


def _add_query_commands(commands) -> None:
    p = commands.add_parser("mesh", help="extract level sets: marching cubes (3D) or squares (2D)",
                            description="Extract the level sets f = iso of a field: a triangle mesh (3D) or "
                                        "polylines (2D), in world units. 1-Lipschitz fields are contoured coarse "
                                        "to fine, skipping cells the Lipschitz bound rules out; the output equals "
                                        "the dense grid's.")
    _field_options(p)
    p.add_argument("--iso", type=float, nargs="+", default=None, metavar="V",
                   help="levels, world units (default: 0; for unsigned fields one grid cell). Several levels "
                        "write OUT_isoV files")
    p.add_argument("--iso-range", type=float, nargs=3, default=None, metavar=("LO", "HI", "N"),
                   help="N levels evenly from LO to HI (added to --iso)")
    p.add_argument("--res", type=_positive_int, default=None, help="vertices along the longest side (default: 128 in 3D, 512 in 2D)")
    p.add_argument("--dense", action="store_true", help="evaluate every grid vertex (no Lipschitz pruning)")
    p.add_argument("-o", "--output", default=None,
                   help="3D: .obj .ply .off .stl .mesh; 2D: .obj .mesh (default: FIELD_mesh.obj / FIELD_contour.obj)")
    p.set_defaults(func=cmd_mesh)

    p = commands.add_parser("sample-surface", help="evenly spread points (with normals) on a level set",
                            description="Sample points on the level set f = iso: drawn on a contour, projected "
                                        "with Newton steps, spread by repulsion along the surface, projected again. "
                                        "Writes points with normals and reports the largest |f - iso|.")
    _field_options(p, bounds=False)
    p.add_argument("-n", type=_positive_int, default=10_000, help="points (default: 10000)")
    p.add_argument("--iso", type=float, default=None, help="level, world units (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--repulsion-steps", type=int, default=10, metavar="K", help="spreading rounds (default: 10)")
    p.add_argument("--res", type=_positive_int, default=None, help="resolution of the starting contour")
    p.add_argument("-o", "--output", default=None, help=".ply .xyz .txt .npz (default: FIELD_surface.ply)")
    p.set_defaults(func=cmd_sample_surface)

    p = commands.add_parser("skeleton", help="sample the medial axis inside a signed field",
                            description="Sample the medial axis (skeleton): inside points where the field's "
                                        "gradient, by central differences over a grid cell, has norm below the "
                                        "threshold, moved onto their ridge. Writes points with their medial radius.")
    _field_options(p)
    p.add_argument("--res", type=_positive_int, default=None, help="grid vertices along the longest side (default: 256 in 2D, 96 in 3D)")
    p.add_argument("--threshold", type=float, default=0.8,
                   help="gradient-norm threshold; ridges where the two nearest surface directions meet at more than "
                        "2 acos(T) are kept (default: 0.8, about 74 degrees)")
    p.add_argument("--no-refine", action="store_true", help="keep grid vertices instead of moving them onto the ridge")
    p.add_argument("-o", "--output", default=None, help=".ply .xyz .txt .npz (default: FIELD_skeleton.ply)")
    p.set_defaults(func=cmd_skeleton)

    p = commands.add_parser("render", help="picture of a field: 2D map, or 3D sphere tracing",
                            description="2D: the field with iso-contours and its gradient norm. 3D: a shaded image "
                                        "by sphere tracing, stepping by f itself, which a 1-Lipschitz field never "
                                        "lets overshoot; reports steps per ray.")
    _field_options(p, bounds=False)
    p.add_argument("--bounds", type=float, nargs=4, default=None, metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
                   help="2D: extent of the map, world units (default: the field's box)")
    p.add_argument("--iso", type=float, nargs="+", default=None, metavar="V", help="2D: contours to draw in black")
    p.add_argument("--res", type=_positive_int, default=None, help="2D: map resolution (default: 512)")
    p.add_argument("--overlay", nargs="+", default=None, metavar="POINTS",
                   help="2D: point files to draw on the map (e.g. from skeleton or sample-surface)")
    p.add_argument("--size", type=_positive_int, nargs=2, default=[512, 512], metavar=("W", "H"),
                   help="3D: image size in pixels (default: 512 512)")
    p.add_argument("--azimuth", type=float, default=30.0, help="3D: degrees around the up axis (default: 30)")
    p.add_argument("--elevation", type=float, default=20.0, help="3D: degrees above the horizon (default: 20)")
    p.add_argument("--distance", type=float, default=None, help="3D: camera distance, world units (default: frame the shape)")
    p.add_argument("--fov", type=float, default=35.0, help="3D: vertical field of view, degrees (default: 35)")
    p.add_argument("--up", type=float, nargs=3, default=[0.0, 1.0, 0.0], metavar=("X", "Y", "Z"),
                   help="3D: up direction (default: 0 1 0)")
    p.add_argument("--eye", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                   help="3D: camera position, world units (overrides azimuth/elevation/distance)")
    p.add_argument("--target", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                   help="3D: point looked at (default: the shape's centre)")
    p.add_argument("--max-steps", type=_positive_int, default=128, help="3D: most steps per ray (default: 128)")
    p.add_argument("--depth", default=None, metavar="PNG", help="3D: also write a depth image")
    p.add_argument("--normal-map", default=None, metavar="PNG", help="3D: also write a normal map")
    p.add_argument("-o", "--output", default=None, help="image (default: FIELD.png)")
    p.set_defaults(func=cmd_render)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LipsdfError as exc:
        print(f"lipsdf: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # e.g. no permission to write, disk full: the user's environment, not a bug
        where = f": {exc.filename}" if exc.filename else ""
        print(f"lipsdf: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lipsdf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
