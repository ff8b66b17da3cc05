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


def cmd_sample(args: argparse.Namespace) -> int:
    from lipsdf.geometry.io import load_shape
    from lipsdf.geometry.primitives import BUILTIN_PREFIX
    from lipsdf.render import plot_dataset
    from lipsdf.sampling import SamplingConfig, check_mode, sample

    stem = args.shape[len(BUILTIN_PREFIX):] if args.shape.startswith(BUILTIN_PREFIX) else Path(args.shape).stem
    output = Path(args.output or f"{stem}_{args.mode}.npz")
    _check_output(output, (".npz",), "dataset file")
    if args.preview:
        _check_output(Path(args.preview), (".png",), "preview")
    band = tuple(args.band) if args.band else None
    config = SamplingConfig(n=args.n, n_test=args.n_test, n_surface=args.n_surface,
                            uniform_fraction=args.uniform_fraction, near_sigmas=tuple(args.sigma),
                            padding=args.padding, band=band, seed=args.seed)
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
    config = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, margin=args.margin,
                            final_margin=args.final_margin, lam=args.lam, recipe=args.recipe, loss=args.loss,
                            eikonal=args.eikonal, seed=args.seed, checkpoint_every=args.checkpoint_every)
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


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message)


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
    p.add_argument("-n", type=_positive_int, default=100_000, help="training points (default: 100000)")
    p.add_argument("--n-test", type=_positive_int, default=20_000, help="test points (default: 20000)")
    p.add_argument("--n-surface", type=_positive_int, default=None, help="surface samples kept (default: n/4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--kind", choices=KINDS, default=None, help="override the detected kind of shape")
    p.add_argument("--uniform-fraction", type=float, default=0.5,
                   help="share of points uniform in the box, the rest near the surface (default: 0.5)")
    p.add_argument("--sigma", type=float, nargs="+", default=[0.01, 0.05], metavar="S",
                   help="near-surface noise scales, in units of the normalised box [-1, 1] (default: 0.01 0.05)")
    p.add_argument("--padding", type=float, default=0.2,
                   help="room around the shape: its largest half-side maps to 1/(1+padding) (default: 0.2)")
    p.add_argument("--band", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="signed mode: drop points with winding number in (LO, HI), e.g. 0.3 0.7 for open or noisy input")
    p.add_argument("-o", "--output", default=None, help="dataset file (default: NAME_MODE.npz)")
    p.add_argument("--preview", default=None, metavar="PNG", help="also write a picture of the samples")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing, show no progress bar")
    p.set_defaults(func=cmd_sample)

    from lipsdf.nn.models import ARCHITECTURES
    from lipsdf.training import RECIPES, TrainingConfig

    defaults = TrainingConfig()
    p = commands.add_parser("train", help="train a field (.pt) on a dataset",
                            description="Train a neural distance field on a dataset made by `lipsdf sample`. "
                                        "The loss follows the dataset's mode: hKR for signed and unsigned "
                                        "datasets, a distance fit for dist, SAL/SALD for sal.")
    p.add_argument("dataset", help="dataset file (.npz) from `lipsdf sample`")
    p.add_argument("--arch", choices=ARCHITECTURES, default=None,
                   help="network: sll (default; mlp for sal datasets), ortho, mlp or siren")
    p.add_argument("--layers", type=_positive_int, default=None, help="layers (default: 20 for sll, 8 ortho/mlp, 5 siren)")
    p.add_argument("--width", type=_positive_int, default=None, help="width (default: 128; 256 for mlp, siren)")
    p.add_argument("--epochs", type=_positive_int, default=defaults.epochs, help=f"passes over the data (default: {defaults.epochs})")
    p.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size,
                   help=f"points per step (default: {defaults.batch_size})")
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"Adam learning rate (default: {defaults.lr})")
    p.add_argument("--margin", type=float, default=defaults.margin,
                   help=f"hKR margin in unit-box units (default: {defaults.margin})")
    p.add_argument("--final-margin", type=float, default=None,
                   help="lipsdf recipe: margin at the end of training (default: margin / 4)")
    p.add_argument("--lam", type=float, default=defaults.lam, help=f"hKR hinge weight (default: {defaults.lam:g})")
    p.add_argument("--recipe", choices=RECIPES, default=defaults.recipe,
                   help="lipsdf: margin shrinks, lambda ramps up, lr decays (default); paper: the paper's constants")
    p.add_argument("--loss", choices=("hkr", "fit", "sal", "sald"), default=None,
                   help="default: from the dataset's mode (signed/unsigned: hkr, dist: fit, sal: sald)")
    p.add_argument("--eikonal", type=float, default=defaults.eikonal,
                   help=f"weight of the eikonal term when fitting distances (default: {defaults.eikonal})")
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
    return parser


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
