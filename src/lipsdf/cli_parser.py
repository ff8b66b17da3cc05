"""The ``lipsdf`` command line's parser: every command, option, help text and default.

Options that set a config field (sampling, training, evaluation) are made from the config
classes themselves: one flag per field, its help from the field's docstring, its default from
the config (for ``fit``, from :func:`lipsdf.pipeline.recipes.recipe_for`), so help and behaviour
cannot drift apart. :mod:`lipsdf.cli` runs the commands.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Callable, Optional

from lipsdf.version import __version__

EXIT_USAGE = 2
Command = Callable[..., argparse.ArgumentParser]  # adds one command to the parser
SHAPE_HELP = "shape file (.obj .ply .off .stl .mesh .xyz .txt .npz .geojson) or builtin:NAME"


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad options in one line, like every other lipsdf error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _duration(text: str) -> float:
    from lipsdf.errors import LipsdfError
    from lipsdf.pipeline.options import parse_duration

    try:
        return parse_duration(text)
    except LipsdfError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min"


# --------------------------------------------------------------------------- options made from config classes

# group -> (flag -> (config field, argparse keywords beyond those the field's default implies))
_CONFIG_FLAGS: dict[str, dict[str, tuple[str, dict]]] = {
    "sampling": {"-n": ("n", {}), "--n-test": ("n_test", {}), "--n-surface": ("n_surface", {"type": _positive_int}),
                 "--uniform-fraction": ("uniform_fraction", {}), "--sigma": ("near_sigmas", {"metavar": "S"}),
                 "--padding": ("padding", {}), "--band": ("band", {"type": float, "nargs": 2,
                                                                   "metavar": ("LO", "HI")})},
    "training": {"--epochs": ("epochs", {}), "--batch-size": ("batch_size", {}), "--lr": ("lr", {"type": float}),
                 "--adam-beta2": ("adam_beta2", {}), "--optimiser": ("optimiser", {"choices": ("adam", "muon")}),
                 "--muon-lr": ("muon_lr", {}), "--error-focus": ("error_focus", {}),
                 "--margin": ("margin", {"type": float}), "--final-margin": ("final_margin", {"type": float}),
                 "--lam": ("lam", {}), "--recipe": ("recipe", {"choices": ("lipsdf", "paper")}),
                 "--loss": ("loss", {"choices": ("hkr", "fit", "fit-hinge", "sal", "sald")}), "--eikonal": ("eikonal", {}),
                 "--compile": ("compile", {}),
                 "--precision": ("matmul_precision", {"choices": ("float32", "tf32", "bf16")})},
    "evaluation": {"--n-uniform": ("n_uniform", {}), "--n-near": ("n_near", {}), "--pairs": ("n_pairs", {}),
                   "--n-surface": ("n_surface", {})},
}


def _config_class(group: str) -> type:
    """The config class of ``group``, importing only its module (training's and evaluation's import torch)."""
    if group == "sampling":
        from lipsdf.sampling import SamplingConfig

        return SamplingConfig
    if group == "training":
        from lipsdf.training import TrainingConfig

        return TrainingConfig
    from lipsdf.evaluate import EvaluationConfig

    return EvaluationConfig


def _field_help(cls: type) -> dict[str, str]:
    """Each field's first sentence in the class docstring's ``Attributes`` section (``name : text``)."""
    section = (cls.__doc__ or "").split("Attributes\n", 1)[-1]
    found = re.findall(r"^\s*(\w+) : (.+?)(?=\n\s*\w+ : |\n\s*\n|\Z)", section, flags=re.M | re.S)
    # cross-references into the API docs ("(see :meth:`margins`)") mean nothing on a command line
    plain = {name: re.sub(r"\s*\((?:see )?:\w+:`[^`]*`\)", "", " ".join(text.replace("``", "").split()))
             for name, text in found}
    return {name: re.split(r"(?<=\.) ", text, maxsplit=1)[0].rstrip(".") for name, text in plain.items()}


def _fit_default(group: str, name: str, value: Any) -> Optional[str]:
    """The default of a fit option in words, from :func:`~lipsdf.pipeline.recipes.recipe_for`: by dimension and
    quick where they differ, and for unsigned fields where theirs differ from the signed fits (a signed
    point cloud's are a mesh's). Epochs are the time budget's."""
    from lipsdf.pipeline.recipes import recipe_for

    if (group, name) == ("training", "epochs"):
        return "as many as fit in the time budget, --time"

    def shown(setting: Any) -> Optional[str]:
        if setting is None:
            return None
        return " ".join(map(str, setting)) if isinstance(setting, tuple) else str(setting)

    def said(signed: bool) -> Optional[str]:
        values = [shown(getattr(recipe_for(dim, quick, signed=signed), group).get(name, value))
                  for quick in (False, True) for dim in (3, 2)]
        if len(set(values)) == 1:
            return values[0]
        return f"{values[0]} in 3D, {values[1]} in 2D; quick: {values[2]}, {values[3]}"

    signed, other = said(True), said(False)
    return signed if signed == other else f"{signed}; unsigned fields: {other}"


def _add_config_options(p, group: str, fit: bool = False, absent: bool = False) -> None:
    """One option per config field of ``group``. For fit (and with ``absent``), options not given are absent
    from the parsed arguments (argparse.SUPPRESS), so that only those given replace the defaults."""
    cls = _config_class(group)
    defaults, helps = cls(), _field_help(cls)
    prefix = "--eval-" if fit and group == "evaluation" else "--"
    for flag, (name, extra) in _CONFIG_FLAGS[group].items():
        value = getattr(defaults, name)
        if isinstance(value, bool):
            kwargs = {"action": "store_true"}
        elif isinstance(value, tuple):
            kwargs = {"type": type(value[0]), "nargs": "+"}
        else:
            kwargs = {"type": _positive_int if isinstance(value, int) else type(value)} if value is not None else {}
        plain = kwargs.get("action") is None and "choices" not in extra
        kwargs.update({"metavar": name.upper(), **extra} if plain else extra)
        shown = " ".join(map(str, value)) if isinstance(value, tuple) else value
        said = _fit_default(group, name, shown) if fit else shown  # None: the docstring says it
        said = None if isinstance(value, bool) else said
        help_text = f"{helps.get(name, name)} (default: {said})" if said is not None else helps.get(name, name)
        p.add_argument(flag.replace("--", prefix, 1), dest=f"{group}:{name}", help=help_text,
                       default=argparse.SUPPRESS if fit or absent else list(value) if isinstance(value, tuple) else value,
                       **kwargs)


def given(args: argparse.Namespace, group: str) -> dict[str, Any]:
    """The config fields of ``group`` present in ``args`` (lists as tuples)."""
    prefix = f"{group}:"
    return {dest[len(prefix):]: tuple(value) if isinstance(value, list) else value
            for dest, value in vars(args).items() if dest.startswith(prefix)}


def _add_model_options(p, fit: bool = False) -> None:
    from lipsdf.nn.models import ARCHITECTURES
    from lipsdf.training import DEFAULT_ARCH, MODEL_SIZES

    default = {"default": argparse.SUPPRESS} if fit else {"default": None}
    sizes = ", ".join(f"{arch} {layers} x {width}" for arch, (layers, width) in MODEL_SIZES.items())
    p.add_argument("--arch", choices=ARCHITECTURES, dest="model:arch", **default,
                   help=f"network (default: {DEFAULT_ARCH['signed']}; {DEFAULT_ARCH['sal']} for sal datasets)")
    p.add_argument("--layers", type=_positive_int, dest="model:layers", metavar="LAYERS", **default,
                   help=f"layers (default: {sizes})")
    p.add_argument("--width", type=_positive_int, dest="model:width", metavar="WIDTH", **default,
                   help="width (default: as --layers)")


# --------------------------------------------------------------------------- the parser

def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``lipsdf`` parser; each command sets ``args.command``, which :mod:`lipsdf.cli` dispatches on.

    ``only``: the command whose options alone are built (with those of its group; the others are left
    out), so that a command that needs no torch (``sample``) does not import it for the others' defaults.
    """
    from lipsdf.geometry.shapes import KINDS

    quiet = _Parser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="print nothing, show no progress bar")
    shaped = _Parser(add_help=False)
    shaped.add_argument("--kind", choices=KINDS, default=None, help="override the detected kind of shape")
    shaped.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    bounded = _Parser(add_help=False)
    bounded.add_argument("--bounds", type=float, nargs="+", default=None, metavar="V",
                         help="box, world units: xmin ymin [zmin] xmax ymax [zmax] (default: the field's box)")

    parser = _Parser(prog="lipsdf", description="1-Lipschitz neural distance fields.")
    parser.add_argument("--version", action="version", version=f"lipsdf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_text: str, description: str, parents=()) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=description, parents=list(parents))

    groups = [(("sample",), lambda: _add_sample_command(command, shaped, quiet)),
              (("train",), lambda: _add_train_command(command, quiet)),
              (("fit", "fit-many"), lambda: _add_fit_commands(command, shaped, quiet)),
              (("eval", "mesh", "sample-surface", "skeleton"),
               lambda: _add_query_commands(command, _on_field(quiet), shaped, bounded)),
              (("render",), lambda: _add_render_command(command, _on_field(quiet))),
              (("export", "view"), lambda: _add_export_commands(command, quiet))]
    known = only is not None and any(only in names for names, _ in groups)
    for names, add in groups:
        if not known or only in names:
            add()
    return parser


def _on_field(quiet: _Parser) -> _Parser:
    """The options of every command that reads a field."""
    from lipsdf.field import DEFAULT_BATCH_SIZE

    on_field = _Parser(add_help=False, parents=[quiet])
    on_field.add_argument("field", help="field file (.pt) from `lipsdf train`")
    on_field.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    on_field.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE,
                          help=f"points per network call (default: {DEFAULT_BATCH_SIZE}; more on a GPU)")
    return on_field


def _add_export_commands(command: Command, quiet: _Parser) -> None:
    """``export`` and ``view``."""
    p = command("export", "write a field as ONNX, GLSL or WGSL, for use outside Python",
                "Write a field for other programs, in world units, the format taken from the output's suffix: .onnx "
                "(input points [N, dim], output distance [N]; metadata says the dimension, kind, architecture and "
                "Lipschitz bound; needs pip install 'lipsdf[export]'), .glsl (GLSL ES 3.00 source of "
                "lipsdf_distance, with its weights beside it in NAME.weights.bin, read as a float texture) or .wgsl "
                "(WGSL source of lipsdf_distance, the same weights read from a storage buffer).", [quiet])
    p.add_argument("field", help="field file (.pt)")
    p.add_argument("-o", "--output", required=True, help="OUT.onnx, OUT.glsl or OUT.wgsl")
    p = command("view", "a self-contained HTML page that shows a field in the browser (WebGL2)",
                "Write one HTML file, needing no network, that draws the field with WebGL2: sphere tracing of a "
                "level set with an iso slider, a cutting plane with the field's values, the steps per ray (3D); the "
                "field map with iso-lines (2D). Drag to orbit or pan, wheel to zoom.", [quiet])
    p.add_argument("field", help="field file (.pt)")
    p.add_argument("-o", "--output", default=None, help="page, .html (default: FIELD.html)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")


def _add_sample_command(command: Command, shaped: _Parser, quiet: _Parser) -> None:
    from lipsdf.dataset import MODES

    p = command("sample", "sample a training dataset (.npz) around a shape",
                "Sample training points around a shape file (or builtin:NAME) and write a dataset .npz.",
                [shaped, quiet])
    p.add_argument("shape", help=SHAPE_HELP)
    p.add_argument("--mode", choices=MODES, default="signed", help="what the dataset is for (default: signed)")
    _add_config_options(p, "sampling")
    p.add_argument("-o", "--output", default=None, help="dataset file (default: NAME_MODE.npz)")
    p.add_argument("--preview", default=None, metavar="PNG", help="also write a picture of the samples")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present): on a GPU, a "
                   "polyline's or a mesh's distances and winding numbers are computed there")


def _add_train_command(command: Command, quiet: _Parser) -> None:
    from lipsdf.training import TrainingConfig

    p = command("train", "train a field (.pt) on a dataset",
                "Train a neural distance field on a dataset made by `lipsdf sample`. The loss follows the dataset: "
                "fit-hinge where it has exact distances (meshes, polylines), hKR on labels (point clouds), a "
                "distance fit with an eikonal term for the dist baselines, SAL/SALD for sal.", [quiet])
    p.add_argument("dataset", nargs="?", help="dataset file (.npz) from `lipsdf sample` (with --resume: "
                   "default, the one the checkpoint was trained on)")
    p.add_argument("--resume", default=None, metavar="FIELD.pt",
                   help="continue an interrupted run from its last checkpoint, with its own settings")
    _add_model_options(p, fit=True)
    _add_config_options(p, "training", absent=True)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    every = TrainingConfig().checkpoint_every
    p.add_argument("--checkpoint-every", type=int, default=every, metavar="K",
                   help=f"write the field every K epochs, 0 for only at the end (default: {every})")
    p.add_argument("--log", default=None, help="per-epoch log, .jsonl or .csv (default: FIELD.jsonl)")
    p.add_argument("--preview", default=None, metavar="PNG",
                   help="picture of the field at the end and, as PNG_eEPOCH.png, at each checkpoint")
    p.add_argument("-o", "--output", default=None, help="field file (default: DATASET.pt)")


def _add_fit_commands(command: Command, shaped: _Parser, quiet: _Parser) -> None:
    """``fit`` and ``fit-many``."""
    from lipsdf.dataset import MODES
    from lipsdf.pipeline.many import ENGINES
    from lipsdf.pipeline.recipes import recipe_for

    fit_options = _Parser(add_help=False)
    fit_options.add_argument("--quick", action="store_true", help="a preview in about a minute: fewer points, "
                             "a coarser contour")
    fit_options.add_argument("--time", type=_duration, default=None, metavar="DURATION",
                             help=f"the whole fit's time budget, like 90s or 10m: the fit times its training step "
                             f"and trains the epochs that fill it; --epochs overrides it (default: "
                             f"{_minutes(recipe_for(3).budget)} on a CPU, {_minutes(recipe_for(3, True).budget)} "
                             f"with --quick; {recipe_for(3, device='cuda').budget:g} s in 3D on a GPU)")
    fit_options.add_argument("--mode", choices=MODES, default=None, help="signed (default with an inside), unsigned "
                             "(default otherwise), or dist/sal for the baselines")
    fit_options.add_argument("--res", type=_positive_int, default=None, help=f"contour grid, vertices along the "
                             f"longest side (default: {recipe_for(3).resolution} in 3D, {recipe_for(2).resolution} "
                             f"in 2D; quick: {recipe_for(3, True).resolution}, {recipe_for(2, True).resolution})")
    fit_options.add_argument("--image-size", type=_positive_int, default=None, help=f"3D picture side in pixels "
                             f"(default: {recipe_for(3).image_size}; quick: {recipe_for(3, True).image_size})")
    fit_options.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    for group, title in (("sampling", "sample"), ("training", "train"), ("evaluation", "eval")):
        options = fit_options.add_argument_group(f"{group} (as in `lipsdf {title}`)")
        if group == "training":
            _add_model_options(options, fit=True)
        _add_config_options(options, group, fit=True)
    p = command("fit", "shape to field in one command: sample, train, contour, render, eval",
                "Fit a 1-Lipschitz distance field to a shape: sample, train, extract the contour, render a picture "
                "and evaluate against the shape, within a time budget (--time). --quick gives a preview in about a "
                "minute. The sample, train and eval options pass through.", [shaped, quiet, fit_options])
    p.add_argument("shape", nargs="?", help=SHAPE_HELP)
    p.add_argument("-o", "--output", default=None, help="output folder, made if missing (default: NAME_fit)")
    p.add_argument("--resume", default=None, metavar="OUTDIR",
                   help="continue the interrupted fit in OUTDIR from its last checkpoint, with its own settings")
    p.add_argument("--reference", default=None, metavar="SHAPE",
                   help="evaluate against this shape instead of the input: a scan's true surface (a mesh), say")
    p = command("fit-many", "fit a collection of shapes in parallel (local cores, GPUs, or Ray)",
                "Fit every shape of a collection into OUTDIR/NAME/, exactly as `lipsdf fit` would, on a pool of "
                "local worker processes or as Ray tasks. Reruns skip the shapes whose outputs are complete and were "
                "made from the same input and settings, and resume interrupted ones. Writes OUTDIR/summary.csv and "
                "summary.md; exit status 1 when some shape failed.", [shaped, quiet, fit_options])
    p.add_argument("inputs", nargs="+", help="shape files, builtin:NAME, folders (searched recursively) or "
                   "manifests (.csv with a path column, or .txt with a path per line; key=value options after it)")
    p.add_argument("-o", "--output", required=True, help="the collection's folder, made if missing")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="shapes fitted at once (default: one per GPU with several, else half the cores)")
    p.add_argument("--engine", choices=ENGINES, default=ENGINES[0],
                   help="local: worker processes on this machine (default); ray: one Ray task per shape")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the Ray cluster to join: auto, or host:port (default: the running instance, or a local one)")
    p.add_argument("--stack", type=_positive_int, default=None, metavar="K",
                   help="train K shapes' networks together in one batched step, in one process (each trains as "
                   "it would alone; default: 16 on a GPU, 1 on a CPU)")


def _add_query_commands(command: Command, on_field: _Parser, shaped: _Parser, bounded: _Parser) -> None:
    """``eval``, ``mesh``, ``sample-surface`` and ``skeleton``."""
    from lipsdf.query.contour import DEFAULT_RESOLUTION
    from lipsdf.query.skeleton import DEFAULT_RESOLUTION as SKELETON_RESOLUTION, DEFAULT_THRESHOLD

    def res(table: dict) -> str:
        return f"{table[3]} in 3D, {table[2]} in 2D"

    p = command("eval", "measure a field against the shape it approximates",
                "Measure a field against ground truth: distance errors and sign accuracy on uniform and near-surface "
                "points, gradient norms, the largest |f(x) - f(y)| / |x - y| over random pairs, how often |f| exceeds "
                "the true distance; Chamfer, Hausdorff and normal consistency of the field's contour against the "
                "shape. Prints a table and writes JSON.", [on_field, shaped])
    p.add_argument("--reference", "--against", dest="reference", required=True, metavar="SHAPE",
                   help="the truth to measure against: the shape the field was fitted to, or for a scan's field the "
                        "true surface (a mesh); " + SHAPE_HELP)
    _add_config_options(p, "evaluation")
    p.add_argument("--res", type=_positive_int, default=None, help=f"contour grid (default: {res(DEFAULT_RESOLUTION)})")
    p.add_argument("-o", "--output", default=None, help="metrics file, .json (default: FIELD_metrics.json)")

    p = command("mesh", "extract level sets: marching cubes (3D) or squares (2D)",
                "Extract the level sets f = iso of a field: a triangle mesh (3D) or polylines (2D), in world units. "
                "1-Lipschitz fields are contoured coarse to fine, skipping the cells that the Lipschitz bound rules "
                "out; the output equals the dense grid's.", [on_field, bounded])
    p.add_argument("--iso", type=float, nargs="+", default=None, metavar="V", help="levels, world units (default: 0; "
                   "one grid cell for unsigned fields); several levels write OUT_isoV files")
    p.add_argument("--iso-range", type=float, nargs=3, default=None, metavar=("LO", "HI", "N"),
                   help="N levels evenly from LO to HI (added to --iso)")
    p.add_argument("--res", type=_positive_int, default=None,
                   help=f"vertices along the longest side (default: {res(DEFAULT_RESOLUTION)})")
    p.add_argument("--dense", action="store_true", help="evaluate every grid vertex (no Lipschitz pruning)")
    p.add_argument("-o", "--output", default=None, help="3D: .obj .ply .off .stl .mesh; 2D: .obj .mesh "
                   "(default: FIELD_mesh.obj / FIELD_contour.obj)")

    p = command("sample-surface", "evenly spread points (with normals) on a level set",
                "Sample points on the level set f = iso: drawn on a contour, projected with Newton steps, spread "
                "by repulsion along the surface, projected again. Writes points with normals.", [on_field])
    p.add_argument("-n", type=_positive_int, default=10_000, help="points (default: 10000)")
    p.add_argument("--iso", type=float, default=None, help="level, world units (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--repulsion-steps", type=int, default=10, metavar="K", help="spreading rounds (default: 10)")
    p.add_argument("--res", type=_positive_int, default=None, help="resolution of the starting contour")
    p.add_argument("-o", "--output", default=None, help=".ply .xyz .txt .npz (default: FIELD_surface.ply)")

    p = command("skeleton", "sample the medial axis inside a signed field",
                "Sample the medial axis: inside points where the field's gradient, by central differences over a "
                "grid cell, has norm below the threshold, moved onto their ridge; with their medial radius.",
                [on_field, bounded])
    p.add_argument("--res", type=_positive_int, default=None,
                   help=f"grid vertices along the longest side (default: {res(SKELETON_RESOLUTION)})")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="gradient-norm threshold: keeps "
                   f"ridges where the nearest surface directions meet at over 2 acos(T) (default: {DEFAULT_THRESHOLD})")
    p.add_argument("--no-refine", action="store_true", help="keep grid vertices instead of moving them onto the ridge")
    p.add_argument("-o", "--output", default=None, help=".ply .xyz .txt .npz (default: FIELD_skeleton.ply)")


def _add_render_command(command: Command, on_field: _Parser) -> None:
    from lipsdf.query.trace import DEFAULT_MAX_STEPS, SHADING_SMOOTHING

    p = command("render", "picture of a field: 2D map, or 3D sphere tracing",
                "2D: the field with iso-contours and its gradient norm. 3D: a shaded image by sphere tracing, "
                "stepping by f itself, which a 1-Lipschitz field never lets overshoot.", [on_field])
    p.add_argument("-o", "--output", default=None, help="image (default: FIELD.png)")
    p.add_argument("--bounds", type=float, nargs=4, default=None, metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
                   help="2D: extent of the map, world units (default: the field's box)")
    p.add_argument("--iso", type=float, nargs="+", default=None, metavar="V",
                   help="2D: contours to draw in black; 3D: the level to trace (default: 0, or one grid cell for an "
                        "unsigned field)")
    p.add_argument("--res", type=_positive_int, default=None, help="2D: map resolution (default: 512)")
    p.add_argument("--overlay", nargs="+", default=None, metavar="POINTS", help="2D: point files to draw on the map")
    p.add_argument("--size", type=_positive_int, nargs=2, default=[512, 512], metavar=("W", "H"),
                   help="3D: image size in pixels (default: 512 512)")
    for flag, default, text in (("--azimuth", 30.0, "degrees around the up axis"),
                                ("--elevation", 20.0, "degrees above the horizon"),
                                ("--fov", 35.0, "vertical field of view, degrees"),
                                ("--distance", None, "camera distance, world units (default: frame the shape)")):
        p.add_argument(flag, type=float, default=default, help=f"3D: {text}" + (f" (default: {default:g})"
                                                                                  if default is not None else ""))
    for flag, default, text in (("--up", [0.0, 1.0, 0.0], "up direction (default: 0 1 0)"),
                                ("--eye", None, "camera position, world units (overrides the orbit)"),
                                ("--target", None, "point looked at (default: the shape's centre)")):
        p.add_argument(flag, type=float, nargs=3, default=default, metavar=("X", "Y", "Z"), help=f"3D: {text}")
    p.add_argument("--max-steps", type=_positive_int, default=DEFAULT_MAX_STEPS,
                   help=f"3D: most steps per ray (default: {DEFAULT_MAX_STEPS})")
    p.add_argument("--smoothing", type=float, default=SHADING_SMOOTHING, metavar="S",
                   help="3D: shading normals averaged over this size, unit-box units; 0 for the exact gradient, "
                        f"which shows a ReLU network's linear pieces as facets (default: {SHADING_SMOOTHING})")
    p.add_argument("--depth", default=None, metavar="PNG", help="3D: also write a depth image")
    p.add_argument("--normal-map", default=None, metavar="PNG", help="3D: also write a normal map")


def flag_of(parser: argparse.ArgumentParser, command: str, option: str) -> Optional[str]:
    """The flag of ``command`` that sets the library option ``option`` (a config field or parameter), if any."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return next((a.option_strings[-1] for a in sub._actions
                 if a.option_strings and (a.dest == option or a.dest.endswith(f":{option}"))), None)
