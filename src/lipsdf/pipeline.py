"""The whole pipeline in one call: shape -> dataset -> field -> contour -> pictures -> metrics.

:func:`fit` is what ``lipsdf fit`` runs. Its defaults depend on the shape's
dimension and on ``quick`` (see :func:`fit_defaults`); every default can be
overridden per stage.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field as dataclass_field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from lipsdf.errors import InputFileError
from lipsdf.evaluate import EvaluationConfig, evaluate_field
from lipsdf.field import NeuralField, resolve_device
from lipsdf.files import atomic_output
from lipsdf.geometry.io import load_shape, save_shape, shape_name
from lipsdf.geometry.shapes import Shape
from lipsdf.sampling import SamplingConfig, check_mode, sample
from lipsdf.training import Trainer, TrainingConfig, default_model_config

PathLike = Union[str, Path]


@dataclass
class FitDefaults:
    """What :func:`fit` does unless told otherwise, for one dimension and speed."""

    sampling: dict[str, Any]
    training: dict[str, Any]
    resolution: int
    image_size: int
    evaluation: dict[str, Any]


def fit_defaults(dim: int, quick: bool = False) -> FitDefaults:
    """The defaults of :func:`fit`: a good field within about 10 minutes for a 3D mesh on a 2-core CPU
    (3 minutes for a 2D outline), or a preview in about one minute with ``quick``.

    Measured with ``benchmarks/fit.py`` and the training benchmark: the paper's SLL
    20 x 128 network at batch 4096 converges steadily for about 12 million point visits on this CPU.

    Examples
    --------
    >>> fit_defaults(3).training["epochs"], fit_defaults(3, quick=True).resolution
    (50, 96)
    """
    if dim == 3:
        if quick:
            return FitDefaults({"n": 40_000, "n_test": 5_000}, {"epochs": 25, "batch_size": 2048, "lr": 1e-3},
                               96, 256, {"n_uniform": 5_000, "n_near": 5_000, "n_pairs": 20_000,
                                         "n_surface": 20_000})
        return FitDefaults({"n": 200_000, "n_test": 20_000}, {"epochs": 50}, 192, 512, {})
    if quick:
        return FitDefaults({"n": 20_000, "n_test": 5_000}, {"epochs": 20, "batch_size": 1024, "lr": 2e-3},
                           256, 0, {"n_uniform": 5_000, "n_near": 5_000, "n_pairs": 20_000, "n_surface": 20_000})
    return FitDefaults({"n": 60_000, "n_test": 20_000}, {"epochs": 40, "batch_size": 2048, "lr": 1e-3},
                       512, 0, {})


@dataclass
class FitResult:
    """What :func:`fit` made: the field, its metrics, and the files it wrote (by role)."""

    field: NeuralField
    metrics: dict[str, Any]
    files: dict[str, Path] = dataclass_field(default_factory=dict)


def fit(shape: Union[PathLike, Shape], output: PathLike, *, quick: bool = False, mode: Optional[str] = None,
        kind: Optional[str] = None, sampling: Optional[dict[str, Any]] = None,
        training: Optional[dict[str, Any]] = None, model: Optional[dict[str, Any]] = None,
        resolution: Optional[int] = None, image_size: Optional[int] = None,
        evaluation: Optional[dict[str, Any]] = None, device: Optional[str] = None, quiet: bool = True,
        say: Callable[[str], None] = lambda message: None) -> FitResult:
    """Fit a 1-Lipschitz distance field to a shape and write everything about it into ``output``.

    Parameters
    ----------
    shape : a shape file, ``builtin:NAME``, or a Shape in world units.
    output : folder for the files (made if missing): ``NAME_MODE.npz`` (dataset), ``NAME.pt``
        (field), ``NAME.jsonl`` (training log), ``NAME_mesh.obj`` (3D) or ``NAME_contour.obj`` (2D),
        ``NAME.png`` (picture) and ``metrics.json`` (``lipsdf eval``'s metrics, the stages' times
        and the settings).
    quick : a preview in about a minute instead of a good field in about ten (3D, CPU).
    mode : ``signed`` (default where the shape has an inside) or ``unsigned`` (default otherwise);
        ``dist`` and ``sal`` train the baselines.
    kind : override the detected kind of a shape file (``mesh``, ``pointcloud``, ...).
    sampling, training, evaluation : overrides of :class:`~lipsdf.sampling.SamplingConfig`,
        :class:`~lipsdf.training.TrainingConfig` and :class:`~lipsdf.evaluate.EvaluationConfig` fields.
    model : ``arch``, ``layers``, ``width`` overrides.
    resolution : contour grid (vertices along the longest side).
    image_size : side of the 3D picture in pixels.
    device : ``cpu`` or ``cuda`` (default: CUDA when present).
    say : called with one line per finished stage.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     result = fit("builtin:circle", folder, quick=True, sampling={"n": 2000, "n_test": 500},
    ...                  training={"epochs": 2}, resolution=64,
    ...                  evaluation={"n_uniform": 500, "n_near": 500, "n_pairs": 500, "n_surface": 500})
    ...     result.files["field"].name, result.metrics["kind"], result.metrics["lipschitz"]["max_ratio"] <= 1
    ('circle.pt', 'signed', True)
    """
    started = time.perf_counter()
    name = shape_name(shape) if isinstance(shape, (str, Path)) else "shape"
    device = resolve_device(device)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise InputFileError(f"{output} exists and is not a folder; name a folder for the outputs")
    loaded = shape if not isinstance(shape, (str, Path)) else load_shape(shape, kind=kind)
    mode = mode or ("signed" if loaded.has_inside else "unsigned")
    check_mode(loaded, mode)
    defaults = fit_defaults(loaded.dim, quick)
    sampling_config = SamplingConfig(**{**asdict(SamplingConfig()), **defaults.sampling, **(sampling or {})})
    training_config = TrainingConfig(**{**asdict(TrainingConfig()), "checkpoint_every": 0, **defaults.training,
                                        **(training or {})})
    resolution = resolution or defaults.resolution
    evaluation_config = EvaluationConfig(**{**asdict(EvaluationConfig()), "resolution": resolution,
                                            **defaults.evaluation, **(evaluation or {})})
    image_size = image_size or defaults.image_size
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    # Everything is written to a staging folder inside ``output`` and moved into place at the end, so a run
    # that fails or is interrupted leaves no half of its files behind (and overwrites nothing until then).
    staging = Path(tempfile.mkdtemp(prefix=".fit-", dir=output))
    try:
        neural_field, metrics, files = _run_stages(loaded, shape, name, mode, staging, sampling_config,
                                                   training_config, model or {}, resolution, image_size,
                                                   evaluation_config, device, quick, quiet, say, started)
        for role, path in list(files.items()):
            os.replace(path, output / path.name)
            files[role] = output / path.name
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(output.iterdir()):
            output.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return FitResult(neural_field, metrics, files)


def _run_stages(loaded: Shape, shape, name: str, mode: str, output: Path, sampling_config: SamplingConfig,
                training_config: TrainingConfig, model: dict[str, Any], resolution: int, image_size: int,
                evaluation_config: EvaluationConfig, device, quick: bool, quiet: bool,
                say: Callable[[str], None], started: float):
    files = {"dataset": output / f"{name}_{mode}.npz", "field": output / f"{name}.pt",
             "log": output / f"{name}.jsonl",
             "contour": output / f"{name}_{'mesh' if loaded.dim == 3 else 'contour'}.obj",
             "picture": output / f"{name}.png", "metrics": output / "metrics.json"}
    seconds: dict[str, float] = {}

    def stage(label: str, since: float) -> float:
        seconds[label] = round(time.perf_counter() - since, 2)
        return time.perf_counter()

    now = time.perf_counter()
    source = {"path": str(shape)} if isinstance(shape, (str, Path)) else {}
    dataset = sample(loaded, mode, sampling_config, source=source, quiet=quiet)
    dataset.save(files["dataset"])
    now = stage("sample", now)
    say(f"sampled {len(dataset.points)} {mode} points [{seconds['sample']:.1f} s]; {files['dataset'].name}")

    model_config = default_model_config(dataset, **model)
    trainer = Trainer(dataset, model_config, training_config, device=str(device), output=files["field"],
                      log=files["log"], quiet=quiet)
    say(f"training {model_config['arch']} {model_config['layers']} x {model_config['width']} with "
        f"{trainer.loss_name} for {training_config.epochs} epochs on {trainer.device}")
    neural_field = trainer.run()
    now = stage("train", now)
    final = neural_field.summary["final"]
    say(f"trained [{seconds['train']:.1f} s]: test mean error {100 * final['mae_rel']:.2f}% of the diagonal; "
        f"{files['field'].name}")

    contour = _contour(neural_field, resolution)
    if contour is None:
        files.pop("contour")
        say("the field has no level set in its box: no contour written")
    else:
        save_shape(contour, files["contour"])
        say(f"contoured at resolution {resolution}: {files['contour'].name}")
    now = stage("contour", now)

    picture = _picture(neural_field, files["picture"], image_size, resolution)
    now = stage("render", now)
    say(f"rendered {picture.name}")

    metrics = evaluate_field(neural_field, loaded, evaluation_config, contour=contour)
    stage("eval", now)
    metrics["seconds"] = dict(seconds, total=round(time.perf_counter() - started, 2))
    metrics["settings"] = {"shape": str(shape) if isinstance(shape, (str, Path)) else name, "mode": mode,
                           "quick": quick, "model": model_config, "sampling": asdict(sampling_config),
                           "training": asdict(training_config), "resolution": resolution,
                           "device": str(device)}
    metrics["files"] = {role: path.name for role, path in files.items()}
    with atomic_output(files["metrics"]) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return neural_field, metrics, files


def _contour(field: NeuralField, resolution: int):
    """The zero level set (signed) or the one-cell level set around the shape (unsigned); None if empty."""
    from lipsdf.query.contour import contour, default_level

    return contour(field, default_level(field, resolution), resolution).contours[0].shape


def _picture(field: NeuralField, path: Path, image_size: int, resolution: int) -> Path:
    """2D: the field map with its zero contour; 3D: a sphere-traced image."""
    from lipsdf.query.trace import orbit_camera, shade, shape_framing, trace_image
    from lipsdf.render import plot_field_map, save_image

    if field.dim == 2:
        plot_field_map(field, path, resolution=min(resolution, 512))
        return path
    centre, radius = shape_framing(field)
    camera = orbit_camera(centre, radius, width=image_size, height=image_size)
    return save_image(shade(trace_image(field, camera), camera), path)

