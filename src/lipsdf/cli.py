"""The ``lipsdf`` command: each command calls one library function and prints what it did.

The options are declared in :mod:`lipsdf.cli_parser`. User errors (:class:`~lipsdf.errors.LipsdfError`,
bad options) print one line, with the flag of the option at fault where the command has one, and
exit with status 2; no partial output is left behind.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from lipsdf.cli_parser import EXIT_USAGE, build_parser, flag_of, given
from lipsdf.errors import InputFileError, Interrupted, LipsdfError

if TYPE_CHECKING:
    from lipsdf.pipeline.options import FitOptions


# --------------------------------------------------------------------------- commands


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message)


def _output(chosen: Optional[str], default: Optional[str], suffixes: Sequence[str], what: str) -> Optional[Path]:
    """An output path (chosen, or ``default``; None: optional), checked before any work: suffix, existing folder."""
    if chosen is None and default is None:
        return None
    path = Path(chosen or default)
    if path.suffix.lower() not in suffixes:
        raise InputFileError(f"{what} {path} must end in {' or '.join(suffixes)}")
    if not path.parent.is_dir():
        raise InputFileError(f"output directory {path.parent} does not exist; create it first")
    return path


def _stem(path: str) -> str:
    return Path(path).with_suffix("").name


def cmd_sample(args: argparse.Namespace) -> int:
    from lipsdf.devices import geometry_device
    from lipsdf.geometry.io import load_shape, shape_name, source_info
    from lipsdf.sampling import SamplingConfig, check_mode, sample

    output = _output(args.output, f"{shape_name(args.shape)}_{args.mode}.npz", (".npz",), "dataset file")
    _output(args.preview, None, (".png",), "preview")
    config = SamplingConfig(**given(args, "sampling"), seed=args.seed)
    shape = load_shape(args.shape, kind=args.kind)
    check_mode(shape, args.mode)
    _say(args, f"{args.shape}: {shape.describe()}")
    dataset = sample(shape, args.mode, config, source=source_info(args.shape), quiet=args.quiet,
                     device=geometry_device(args.device))
    for line in dataset.metadata.get("diagnosis", {}).get("lines", []):
        _say(args, line)
    dataset.save(output)
    counts = dataset.metadata["counts"]
    labels = ", ".join(f"{v} {k}" for k, v in counts.items() if k not in ("points", "surface", "test"))
    _say(args, f"{args.mode} dataset: {counts['points']} points{f' ({labels})' if labels else ''}, "
               f"{counts['surface']} surface samples, {counts['test']} test points "
               f"[{dataset.metadata['seconds']:.1f} s]\nwrote {output}")
    if args.preview:
        from lipsdf.render import plot_dataset  # matplotlib: only when asked for
        _say(args, f"wrote {plot_dataset(dataset, args.preview)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from lipsdf.dataset import PointDataset
    from lipsdf.render import PreviewWriter
    from lipsdf.training import Trainer, TrainingConfig, model_config, read_checkpoint

    state = None
    if args.resume:
        if given(args, "training") or given(args, "model"):
            raise LipsdfError("a resumed run keeps the settings it started with; drop the training options",
                              option="resume")
        config, model, state = read_checkpoint(args.resume)
        dataset_path = args.dataset or json.loads(state["dataset"])["path"]
        if dataset_path is None:
            raise LipsdfError("the checkpoint does not name its dataset; give the dataset file", option="resume")
    elif args.dataset is None:
        raise LipsdfError("give a dataset file to train on (or --resume FIELD.pt)")
    else:
        dataset_path = args.dataset
        config = TrainingConfig(**given(args, "training"), seed=args.seed, checkpoint_every=args.checkpoint_every)
    output = _output(args.output or args.resume, Path(dataset_path).with_suffix(".pt").name, (".pt",), "field file")
    log = _output(args.log, str(output.with_suffix(".jsonl")), (".jsonl", ".csv"), "training log")
    _output(args.preview, None, (".png",), "preview")
    dataset = PointDataset.load(dataset_path)
    if state is None:
        model = model_config(dataset.mode, dataset.dim, **given(args, "model"))
    trainer = Trainer(dataset, model, config, device=args.device, output=output, log=log, quiet=args.quiet,
                      callbacks=[PreviewWriter(args.preview)] if args.preview else [], resume=state)
    _say(args, f"{dataset_path}: {dataset.mode} dataset, {len(dataset.points)} points ({dataset.kind}); training "
               f"{model['arch']} {model['layers']} x {model['width']} with {trainer.loss_name} on {trainer.device}"
               + (f", from epoch {state['epoch']} of {config.epochs}" if state else ""))
    try:
        final = trainer.run().summary["final"]
    except KeyboardInterrupt as stop:
        if getattr(stop, "kept", ""):
            stop.kept += f"; continue with `lipsdf train --resume {output}`"
        raise
    sign = f", sign accuracy {100 * final['sign_accuracy']:.2f}%" if "sign_accuracy" in final else ""
    _say(args, f"{final['epoch']} epochs [{final['seconds']:.1f} s]: test mean error {final['mae']:.4g} "
               f"({100 * final['mae_rel']:.2f}% of the diagonal), max {final['max_error']:.4g}{sign}\n"
               f"wrote {output} and {log}")
    return 0


def _load_field(args: argparse.Namespace):
    from lipsdf.field import NeuralField

    return NeuralField.load(args.field, device=getattr(args, "device", None))


def cmd_mesh(args: argparse.Namespace) -> int:
    import numpy as np

    from lipsdf.geometry.io import MESH_FORMATS, save_shape
    from lipsdf.query.contour import contour, resolve_levels

    field = _load_field(args)
    surface = field.dim == 3
    output = _output(args.output, f"{_stem(args.field)}_{'mesh' if surface else 'contour'}.obj",
                     MESH_FORMATS if surface else (".obj", ".mesh"), "mesh file" if surface else "polyline file")
    levels = list(args.iso or [])
    if args.iso_range:
        low, high, count = args.iso_range
        if not float(count).is_integer() or count < 1:
            raise LipsdfError(f"--iso-range LO HI N needs a whole number N >= 1, got {count:g}")
        levels += np.linspace(low, high, int(count)).tolist()
    levels = resolve_levels(field, levels, args.res, args.bounds)
    if not args.dense and not field.is_lipschitz:
        _say(args, f"a {field.arch} field is not 1-Lipschitz: evaluating the dense grid")
    result = contour(field, levels, args.res, args.bounds, dense=args.dense, batch_size=args.batch_size,
                     quiet=args.quiet)
    grid = result.grid
    _say(args, f"{'x'.join(map(str, grid.shape))} grid, cell {grid.spacing:.4g}: {result.evaluations} network "
               f"evaluations ({100 * result.evaluations / grid.size:.1f}% of the dense grid) [{result.seconds:.1f} s]")
    if all(item.shape is None for item in result.contours):
        low, high = result.value_range
        raise LipsdfError(f"no level set to write: the field ranges over [{low:.4g}, {high:.4g}] in the box, "
                          f"which holds none of the levels {', '.join(f'{v:g}' for v in levels)}")
    for item in result.contours:
        path = output if len(levels) == 1 else output.with_name(f"{output.stem}_iso{item.iso:g}{output.suffix}")
        if item.shape is None:
            _say(args, f"iso {item.iso:g}: empty, nothing written")
            continue
        save_shape(item.shape, path)
        _say(args, f"iso {item.iso:g}: {item.shape.describe()}; wrote {path}")
    return 0


def cmd_sample_surface(args: argparse.Namespace) -> int:
    from lipsdf.geometry.io import POINT_FORMATS, save_points
    from lipsdf.query.project import sample_surface

    output = _output(args.output, f"{_stem(args.field)}_surface.ply", POINT_FORMATS, "points file")
    level = 0.0 if args.iso is None else args.iso
    samples = sample_surface(_load_field(args), args.n, level, seed=args.seed, repulsion_steps=args.repulsion_steps,
                             resolution=args.res, batch_size=args.batch_size)
    save_points(samples.points, output, samples.normals)
    _say(args, f"{len(samples.points)} points on iso {level:g}: largest |f - iso| {samples.max_residual:.3g}; "
               f"wrote {output}")
    return 0


def cmd_skeleton(args: argparse.Namespace) -> int:
    from lipsdf.geometry.io import POINT_FORMATS, save_points
    from lipsdf.query.skeleton import skeleton

    output = _output(args.output, f"{_stem(args.field)}_skeleton.ply", POINT_FORMATS, "points file")
    result = skeleton(_load_field(args), args.res, args.threshold, refine=not args.no_refine, bounds=args.bounds,
                      batch_size=args.batch_size, quiet=args.quiet)
    if len(result.points) == 0:
        raise LipsdfError(f"no skeleton point found at threshold {args.threshold:g}; raise it (towards 1) "
                          "or the resolution", option="threshold")
    save_points(result.points, output, scalars={"radius": result.radii})
    _say(args, f"{len(result.points)} skeleton points, medial radii {result.radii.min():.4g} to "
               f"{result.radii.max():.4g}, {result.evaluations} network evaluations; wrote {output}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from lipsdf.geometry.io import load_points
    from lipsdf.query.trace import Camera, orbit_camera, shape_framing
    from lipsdf.render import plot_field_map, render_traced

    output = _output(args.output, f"{_stem(args.field)}.png", (".png",), "image")
    for extra in (args.depth, args.normal_map):
        _output(extra, None, (".png",), "image")
    field = _load_field(args)
    if field.dim == 2:
        overlays = [load_points(name)[:, :2] for name in args.overlay or []]
        stats = plot_field_map(field, output, resolution=args.res or 512, levels=args.iso, bounds=args.bounds,
                               overlays=overlays)
        _say(args, f"gradient norm over the map: min {stats['gradient_norm_min']:.3f}, median "
                   f"{stats['gradient_norm_median']:.3f}, max {stats['gradient_norm_max']:.3f}; wrote {output}")
        return 0
    width, height = args.size
    centre, radius = shape_framing(field, batch_size=args.batch_size)
    target = args.target if args.target is not None else centre
    if args.eye is not None:
        camera = Camera(args.eye, target, args.up, args.fov, width, height)
    else:
        camera = orbit_camera(target, radius, args.azimuth, args.elevation, args.up, args.fov, width, height,
                              args.distance)
    result = render_traced(field, camera, output, args.depth, args.normal_map, args.max_steps, args.batch_size,
                           args.smoothing, level=args.iso[0] if args.iso else None)
    written = [str(p) for p in (output, args.depth, args.normal_map) if p]
    _say(args, f"{width} x {height} rays: {100 * result.hit.mean():.1f}% hit, {result.mean_steps:.1f} steps per ray "
               f"on average (max {int(result.steps.max())}), {int(result.stepped_through.sum())} stepped through the "
               f"surface, {result.unfinished} unfinished [{result.seconds:.1f} s, {result.rays_per_second:,.0f} "
               f"rays/s]\nwrote {', '.join(written)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from lipsdf.evaluate import EvaluationConfig, against_points_note, evaluate_field
    from lipsdf.geometry.io import load_shape

    output = _output(args.output, f"{_stem(args.field)}_metrics.json", (".json",), "metrics file")
    config = EvaluationConfig(**given(args, "evaluation"), resolution=args.res, seed=args.seed)
    field, shape = _load_field(args), load_shape(args.reference, kind=args.kind)
    metrics = evaluate_field(field, shape, config, batch_size=args.batch_size)
    metrics.save(output, field=str(args.field), reference=str(args.reference))
    note = against_points_note(shape)
    _say(args, "\n".join([f"{args.field} ({field.kind} {field.arch} field) against {args.reference} "
                          f"({shape.describe()}), diagonal {metrics.diagonal:.4g} [{metrics.seconds:.1f} s]",
                          metrics.table(), *([f"note: {note}"] if note else []), f"wrote {output}"]))
    return 0


def _fit_options(args: argparse.Namespace) -> "FitOptions":
    """The fit options that ``fit`` and ``fit-many`` were given."""
    from lipsdf.pipeline.options import FitOptions

    return FitOptions(mode=args.mode, kind=args.kind, quick=args.quick, time=args.time, seed=args.seed,
                      resolution=args.res, image_size=args.image_size, device=args.device,
                      reference=getattr(args, "reference", None),
                      **{group: given(args, group) for group in ("sampling", "training", "model", "evaluation")})


def cmd_fit(args: argparse.Namespace) -> int:
    from lipsdf.geometry.io import shape_name
    from lipsdf.pipeline.single import fit

    options = _fit_options(args)
    asked = any(getattr(options, group) for group in ("sampling", "training", "model", "evaluation"))
    if args.resume and (args.shape or args.output or asked or args.time is not None):
        raise LipsdfError("a resumed fit keeps the shape, folder and settings it started with; give only "
                          "--resume OUTDIR (and --device, -q)", option="resume")
    if not args.resume and args.shape is None:
        raise LipsdfError("give a shape to fit (or --resume OUTDIR)")
    output = Path(args.resume or args.output or f"{shape_name(args.shape)}_fit")
    try:
        result = fit(args.shape, output, options, quiet=args.quiet, say=lambda message: _say(args, message),
                     resume=bool(args.resume))
    except KeyboardInterrupt as stop:
        if getattr(stop, "kept", ""):
            stop.kept += f"; continue with `lipsdf fit --resume {output}`"
        raise
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items() if k != "total")
    _say(args, f"{result.metrics.table()}\ndone in {result.seconds['total']:.0f} s ({stages}); everything is in "
               f"{output}/ (metrics.json, {result.files['picture'].name}, ...)")
    return 0


def cmd_fit_many(args: argparse.Namespace) -> int:
    from lipsdf.collection import summary_table
    from lipsdf.pipeline.many import fit_many

    rows = fit_many(args.inputs, args.output, _fit_options(args), workers=args.workers, engine=args.engine,
                    ray_address=args.ray_address, stack=args.stack, quiet=args.quiet, say=lambda m: _say(args, m))
    failed = sum(row.status == "failed" for row in rows)
    _say(args, f"{summary_table(rows)}{len(rows) - failed} of {len(rows)} shapes fitted or up to date; "
               f"summary in {Path(args.output) / 'summary.csv'} and summary.md")
    return 1 if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from lipsdf.export import EXPORT_FORMATS, export_field

    written = export_field(_load_field(args), _output(args.output, "", EXPORT_FORMATS, "export file"))
    _say(args, "wrote " + " and ".join(str(path) for path in written))
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from lipsdf.export import field_program, write_view

    output = _output(args.output, f"{_stem(args.field)}.html", (".html",), "page")
    _say(args, f"wrote {write_view(field_program(_load_field(args)), output, _stem(args.field), args.open)}")
    return 0


COMMANDS = {"sample": cmd_sample, "train": cmd_train, "fit": cmd_fit, "fit-many": cmd_fit_many, "eval": cmd_eval,
            "mesh": cmd_mesh, "sample-surface": cmd_sample_surface, "skeleton": cmd_skeleton, "render": cmd_render,
            "export": cmd_export, "view": cmd_view}


def _stop(signal_number: int, frame) -> None:
    """Turn Ctrl-C and SIGTERM into :class:`Interrupted`, so that every cleanup on the way up runs; further
    signals are ignored while it does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signal_number)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser(only=argv[0] if argv and argv[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may take signals
    handlers = {number: signal.signal(number, _stop) for number in (signal.SIGINT, signal.SIGTERM)
                if in_main_thread}
    try:
        return COMMANDS[args.command](args)
    except LipsdfError as exc:
        flag = exc.option and flag_of(parser, args.command, exc.option)
        print(f"lipsdf: error: {exc}{f' (option {flag})' if flag else ''}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("lipsdf: error: out of memory; try a smaller input, fewer points (-n) or a lower --res", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # e.g. no permission to write, disk full: the user's environment, not a bug
        where = f": {exc.filename}" if exc.filename else ""
        print(f"lipsdf: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        number = getattr(exc, "signal_number", signal.SIGINT)
        kept = getattr(exc, "kept", "") or "nothing was written"
        print(f"lipsdf: interrupted by {signal.Signals(number).name}; {kept}", file=sys.stderr)
        return 128 + number
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


if __name__ == "__main__":
    sys.exit(main())
