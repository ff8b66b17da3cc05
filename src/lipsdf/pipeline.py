"""The whole pipeline in one call: shape -> dataset -> field -> contour -> pictures -> metrics.

:func:`fit` is what ``lipsdf fit`` runs. Its defaults depend on the shape's
dimension and on ``quick`` (see :func:`fit_defaults`); every default can be
overridden per stage. :func:`plan_fit` resolves them all into a
:class:`FitPlan` before any work starts; :class:`FitResult` is what a fit
made, and its :meth:`~FitResult.to_dict` is ``metrics.json``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gc
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field as dataclass_field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch

from lipsdf.collection import Row, fingerprint
from lipsdf.dataset import PointDataset
from lipsdf.errors import InputFileError, LipsdfError
from lipsdf.evaluate import EvaluationConfig, evaluate_field
from lipsdf.field import CUDA_BATCH_SIZE, NeuralField, resolve_device
from lipsdf.files import atomic_output
from lipsdf.geometry.io import load_shape, save_shape, shape_name, source_info
from lipsdf.geometry.shapes import Shape
from lipsdf.metrics import Metrics
from lipsdf.nn.models import build_model
from lipsdf.progress import progress_bar
from lipsdf.query.contour import shape_contour
from lipsdf.render import overview_picture
from lipsdf.sampling import SamplingConfig, check_mode, sample
from lipsdf.training import (DEFAULT_ARCH, DEFAULT_LR, Trainer, TrainingConfig, field_kind, model_config,
                             training_state, bf16_is_fast, using_matmul_precision)

PathLike = Union[str, Path]
STAGING = ".lipsdf-fit"  # inside the output folder: the files of a fit under way


@dataclass
class FitDefaults:
    """What :func:`fit` does unless told otherwise, for one dimension, speed, device and recipe."""

    sampling: dict[str, Any]
    training: dict[str, Any]
    resolution: int
    image_size: int
    evaluation: dict[str, Any]
    model: dict[str, Any] = dataclass_field(default_factory=dict)  # for the default (sll) architecture


# CPU epochs by (dimension, quick): float32 steps, and steps 3/4 in bfloat16 where the CPU has it natively.
# Sized so that a fit keeps to its time on the slowest run of this 2-core CPU measured (2026-12-01, about
# 1.9x slower than on 2026-11-28): 10 minutes in 3D, 3 in 2D, one minute with quick.
_CPU_EPOCHS = {(3, False): (260, 400), (3, True): (67, 100), (2, False): (120, 160), (2, True): (40, 52)}
# Signed fields on exact distances (meshes, outlines): full 3D fits take batches of 2048 instead of 4096, about
# 1.6x the steps in the same time (an epoch costs 1.2x), and 220 epochs (about 0.66x the time of 400 of batch
# 4096: the machine slowed again, and spot's 250 took 10 min 03 s, then 235 took 10 min 23 s); float32 epochs
# in the same proportion.
_SIGNED_3D_EPOCHS, _SIGNED_3D_BATCH = (141, 220), 2048
# ... in 2D, a narrower network (SLL 20 x 48: an epoch costs 0.7x, so 1.4x the steps in the same time) on
# 100k points instead of 60k (135 epochs of them are as many steps as 225 of 60k);
_SIGNED_2D_WIDTH, _SIGNED_2D_EPOCHS = 48, {False: (102, 135), True: (56, 73)}
# ... and three quarters of their points near the surface, a third of those within about 0.003 of it (unit
# box): the zero level is decided there, at the corners and creases a 1-Lipschitz network rounds off.
SIGNED_SAMPLING = {"uniform_fraction": 0.25, "near_sigmas": (0.003, 0.01, 0.05)}
# Outlines draw theirs closer still (their detail is finer, relative to the box, than a mesh's); meshes gained
# nothing from these.
_SIGNED_2D_SIGMAS = (0.002, 0.006, 0.03)
# Signed fits of outlines, and quick signed fits of meshes, step twice as far at the start (lr 1e-2, decayed on
# the same cosine) with a shorter memory of the gradients' scale (Adam's beta2 0.95): at the same epochs, 0.042%
# -> 0.029% Chamfer on France (4 seeds) and 0.104% -> 0.087% on the quick bunny (2 seeds); the full 2D fit
# 0.015% -> 0.010% (benchmarks/budget_levers.py, defaults.py). Full 3D fits keep lr 5e-3 and beta2 0.999: the
# new setting for 235 epochs lost to the old one for 250 by more than the 15 epochs explain (bunny 0.042% ->
# 0.046%, spot 0.020% -> 0.022%; 300 epochs instead of 250 had gained only 0.042% -> 0.040%).
SIGNED_OPTIMISER = {"lr": 1e-2, "adam_beta2": 0.95}
_QUICK_EVALUATION = {"n_uniform": 5_000, "n_near": 5_000, "n_pairs": 20_000, "n_surface": 20_000}


def fit_defaults(dim: int, quick: bool = False, device: Optional[str] = "cpu", recipe: str = "lipsdf",
                 signed: bool = True) -> FitDefaults:
    """The defaults of :func:`fit`: a good field within about 10 minutes for a 3D mesh on a 2-core CPU
    (3 minutes for a 2D outline), or a preview in about one minute with ``quick``.

    The ``lipsdf`` recipe trains SLL 20 x 64 (20 x 48 for signed outlines) with the ``fit-hinge`` loss
    (where the shape has exact distances) at lr 5e-3: measured in ``benchmarks/accuracy_levers.py``, it
    reaches a far more accurate
    field in the same time than the paper's SLL 20 x 128 with hKR at lr 5e-4 (``recipe="paper"``, kept
    to reproduce the paper's setting). On CUDA, more points and larger batches keep the GPU busy. On a
    CPU with native bfloat16 (:func:`~lipsdf.training.bf16_is_fast`), training runs its first 3/4 of steps
    with bfloat16 products, which buys about 1.5x the epochs in the same time.

    ``signed``: the fit trains a signed field on exact distances (a mesh or an outline, not a point cloud
    and not an unsigned field). On a CPU, such fits draw three quarters of their points near the surface
    (:data:`SIGNED_SAMPLING`; outlines closer still), full 3D ones train on batches of 2048, 2D ones a
    narrower SLL 20 x 48 for more epochs, and 2D and quick ones at lr 1e-2 with Adam's beta2 at 0.95
    (:data:`SIGNED_OPTIMISER`): at the same training time each places the zero level more precisely
    (``benchmarks/budget_levers.py``). Unsigned fields and point clouds keep the settings they were
    measured with (and GPU fits theirs).

    Examples
    --------
    >>> fit_defaults(3).training["epochs"] in (141, 220), fit_defaults(3, quick=True).resolution
    (True, 96)
    >>> fit_defaults(3).sampling["uniform_fraction"], "uniform_fraction" in fit_defaults(3, signed=False).sampling
    (0.25, False)
    >>> fit_defaults(3, recipe="paper").model
    {'layers': 20, 'width': 128}
    """
    if recipe == "paper":  # the paper's network, loss and sampling, in float32, for the float32 defaults' epochs
        base = _lipsdf_defaults(dim, quick, device, bf16=False, signed=False)
        return dataclasses.replace(base, training={**base.training, "loss": "hkr", "recipe": "paper", "lr": None,
                                                   "batch_size": 4096},
                                   model={"layers": 20, "width": 128})
    # bfloat16 steps are cheaper where the CPU has them natively, so the same time buys more epochs
    # (benchmarks/accuracy_levers.py); elsewhere bfloat16 is emulated and slower, and training stays float32.
    return _lipsdf_defaults(dim, quick, device, bf16=bf16_is_fast("cpu"), signed=signed)


def _lipsdf_defaults(dim: int, quick: bool, device: Optional[str], bf16: bool, signed: bool) -> FitDefaults:
    model = {"layers": 20, "width": 64}
    if device is not None and str(device).startswith("cuda"):
        # Large batches keep the GPU busy (a step costs little more at 32768 points than at 8192), with the
        # learning rate raised to match; TF32 products in training (the weights still define a 1-Lipschitz
        # network; queries evaluate it in float32); checkpoints are rarer since an epoch takes milliseconds.
        # Measured in benchmarks/gpu.py.
        gpu = {"checkpoint_every": 40, "matmul_precision": "tf32"}
        if dim == 3:
            return FitDefaults({"n": 400_000, "n_test": 20_000},
                               {"epochs": 160, "batch_size": 32768, "lr": 1e-2, **gpu}, 192, 512, {}, model)
        return FitDefaults({"n": 200_000, "n_test": 20_000},
                           {"epochs": 150, "batch_size": 16384, "lr": 7e-3, **gpu}, 512, 0, {}, model)
    fast_optimiser = signed and (dim == 2 or quick)
    training = {"epochs": _CPU_EPOCHS[dim, quick][bf16], "lr": DEFAULT_LR,
                **(SIGNED_OPTIMISER if fast_optimiser else {}), **({"matmul_precision": "bf16"} if bf16 else {})}
    near = SIGNED_SAMPLING if signed else {}
    if signed and dim == 2:
        model["width"] = _SIGNED_2D_WIDTH
        training["epochs"] = _SIGNED_2D_EPOCHS[quick][bf16]
        near = {**near, "near_sigmas": _SIGNED_2D_SIGMAS}
    if dim == 3:
        if quick:
            return FitDefaults({"n": 40_000, "n_test": 5_000, **near}, {**training, "batch_size": 2048}, 96, 256,
                               _QUICK_EVALUATION, model)
        if signed:
            training.update(epochs=_SIGNED_3D_EPOCHS[bf16], batch_size=_SIGNED_3D_BATCH)
        return FitDefaults({"n": 200_000, "n_test": 20_000, **near}, training, 192, 512, {}, model)
    if quick:
        return FitDefaults({"n": 20_000, "n_test": 5_000, **near}, {**training, "batch_size": 1024}, 256, 0,
                           _QUICK_EVALUATION, model)
    # signed outlines: 100k points, as the levers were measured (sampling an outline takes a fraction of a second)
    n = 100_000 if signed else 60_000
    return FitDefaults({"n": n, "n_test": 20_000, **near}, {**training, "batch_size": 2048}, 512, 0, {}, model)


@dataclass
class FitPlan:
    """Everything :func:`fit` will do, resolved from its defaults and the caller's overrides before any work
    starts (so a bad setting fails in seconds, not after sampling)."""

    shape: Shape
    name: str
    source: dict[str, str]
    mode: str
    sampling: SamplingConfig
    training: TrainingConfig
    model: dict[str, Any]
    evaluation: EvaluationConfig
    resolution: int
    image_size: int
    device: torch.device
    quick: bool

    def files(self, folder: Path) -> dict[str, Path]:
        """The files the fit writes into ``folder``, by role."""
        contour = "mesh" if self.shape.dim == 3 else "contour"
        return {"dataset": folder / f"{self.name}_{self.mode}.npz", "field": folder / f"{self.name}.pt",
                "log": folder / f"{self.name}.jsonl", "contour": folder / f"{self.name}_{contour}.obj",
                "picture": folder / f"{self.name}.png", "metrics": folder / "metrics.json"}

    def to_dict(self) -> dict[str, Any]:
        """What :func:`plan_fit` needs to resolve the same plan again (``plan.json`` of an unfinished fit)."""
        return {"shape": self.source.get("path"), "sha256": self.source.get("sha256"), "kind": self.shape.kind,
                "mode": self.mode, "quick": self.quick, "sampling": asdict(self.sampling),
                "training": asdict(self.training), "evaluation": asdict(self.evaluation),
                "model": {key: self.model[key] for key in ("arch", "layers", "width", "activation", "beta")
                          if key in self.model},
                "resolution": self.resolution, "image_size": self.image_size, "device": str(self.device)}

    def settings(self) -> dict[str, Any]:
        """The settings recorded in ``metrics.json``."""
        return {"shape": self.source.get("path", self.name), "mode": self.mode, "quick": self.quick,
                "model": self.model, "sampling": asdict(self.sampling), "training": asdict(self.training),
                "resolution": self.resolution, "device": str(self.device)}


def plan_fit(shape: Union[PathLike, Shape], *, quick: bool = False, mode: Optional[str] = None,
             kind: Optional[str] = None, sampling: Optional[dict[str, Any]] = None,
             training: Optional[dict[str, Any]] = None, model: Optional[dict[str, Any]] = None,
             resolution: Optional[int] = None, image_size: Optional[int] = None,
             evaluation: Optional[dict[str, Any]] = None, device: Optional[str] = None) -> FitPlan:
    """Load the shape and resolve every setting of :func:`fit` (same parameters), without running anything.

    Examples
    --------
    >>> plan = plan_fit("builtin:torus", quick=True)
    >>> plan.mode, plan.training.epochs in (67, 100), plan.model["arch"], plan.resolution
    ('signed', True, 'sll', 96)
    """
    is_file = isinstance(shape, (str, Path))
    loaded = load_shape(shape, kind=kind) if is_file else shape
    mode = mode or ("signed" if loaded.has_inside else "unsigned")
    check_mode(loaded, mode)
    exact_signed = mode == "signed" and loaded.kind != "pointcloud"  # fit-hinge on exact signed distances
    defaults = fit_defaults(loaded.dim, quick, device or str(resolve_device(None)),
                            (training or {}).get("recipe", "lipsdf"), signed=exact_signed)
    if mode in ("dist", "sal"):  # the paper's hKR trains labels; these modes keep their own losses
        defaults.training.pop("loss", None)
    resolution = resolution or defaults.resolution
    default_arch = (model or {}).get("arch", DEFAULT_ARCH[mode]) == DEFAULT_ARCH[mode] == "sll"
    network = model_config(mode, loaded.dim, **{**(defaults.model if default_arch else {}), **(model or {})})
    build_model(network)  # an impossible network (say, width 1) fails now, not after sampling
    if not default_arch:  # the GPU learning rate was measured on the default SLL network, not the baselines
        defaults.training.pop("lr", None)
    config = TrainingConfig(**{**asdict(TrainingConfig()), "checkpoint_every": 5, **defaults.training,
                               **(training or {})})
    config.margins(field_kind(mode, loaded.has_inside))  # so do margins that this kind of field cannot take
    return FitPlan(
        shape=loaded, name=shape_name(shape) if is_file else "shape", source=source_info(shape) if is_file else {},
        mode=mode,
        sampling=SamplingConfig(**{**asdict(SamplingConfig()), **defaults.sampling, **(sampling or {})}),
        training=config,
        model=network,
        evaluation=EvaluationConfig(**{**asdict(EvaluationConfig()), "resolution": resolution,
                                       **defaults.evaluation, **(evaluation or {})}),
        resolution=resolution, image_size=image_size or defaults.image_size, device=resolve_device(device),
        quick=quick)


@dataclass
class FitResult:
    """What :func:`fit` made: the field, its metrics, the seconds of each stage, the settings, and the files
    it wrote (by role). :meth:`to_dict` is the content of ``metrics.json``."""

    field: NeuralField
    metrics: Metrics
    seconds: dict[str, float]
    settings: dict[str, Any]
    files: dict[str, Path] = dataclass_field(default_factory=dict)
    fingerprint: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        extra = {} if self.fingerprint is None else {"fingerprint": self.fingerprint}
        return {**self.metrics.to_dict(), "seconds": self.seconds, "settings": self.settings,
                "files": {role: path.name for role, path in self.files.items()}, **extra}


def fit(shape: Union[PathLike, Shape], output: PathLike, *, quick: bool = False, mode: Optional[str] = None,
        kind: Optional[str] = None, sampling: Optional[dict[str, Any]] = None,
        training: Optional[dict[str, Any]] = None, model: Optional[dict[str, Any]] = None,
        resolution: Optional[int] = None, image_size: Optional[int] = None,
        evaluation: Optional[dict[str, Any]] = None, device: Optional[str] = None, quiet: bool = True,
        say: Callable[[str], None] = lambda message: None, resume: bool = False,
        fingerprint: Optional[str] = None) -> FitResult:
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
    resume : continue the unfinished run in ``output`` (interrupted or killed after its first training
        checkpoint) with the settings it started with; ``shape`` and the other settings are then ignored.
        A resumed fit ends with the same field as an uninterrupted one (on CPU).
    fingerprint : recorded in ``metrics.json`` (and the staging folder's ``plan.json``); ``fit_many`` keeps
        there the digest of the input and settings, to skip shapes that are up to date.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     result = fit("builtin:circle", folder, quick=True, sampling={"n": 2000, "n_test": 500},
    ...                  training={"epochs": 2}, resolution=64,
    ...                  evaluation={"n_uniform": 500, "n_near": 500, "n_pairs": 500, "n_surface": 500})
    ...     result.files["field"].name, result.metrics.kind, result.metrics.lipschitz.max_ratio <= 1
    ('circle.pt', 'signed', True)
    """
    started = time.perf_counter()
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise InputFileError(f"{output} exists and is not a folder; name a folder for the outputs", option="output")
    staging = output / STAGING
    if resume:
        plan = _resumed_plan(staging, device)
    else:
        plan = plan_fit(shape, quick=quick, mode=mode, kind=kind, sampling=sampling, training=training,
                        model=model, resolution=resolution, image_size=image_size, evaluation=evaluation,
                        device=device)
        if staging.exists():
            shutil.rmtree(staging)
            say(f"discarded the files of an unfinished run in {staging}")
    created = not output.exists()
    staging.mkdir(parents=True, exist_ok=True)
    if not resume:
        with atomic_output(staging / "plan.json") as tmp:
            tmp.write_text(json.dumps(dict(plan.to_dict(), fingerprint=fingerprint), indent=2))
    # Everything is written to a staging folder inside ``output`` and moved into place at the end, so a run
    # that fails leaves no half of its files behind (and overwrites nothing until then). An interrupted one
    # keeps it only once training has written a checkpoint, to resume from.
    try:
        result = _run_stages(plan, staging, quiet, say, started, fingerprint)
        for role, path in list(result.files.items()):
            os.replace(path, output / path.name)
            result.files[role] = output / path.name
    except KeyboardInterrupt as stop:  # Ctrl-C, or Interrupted (a signal) from the command line
        field = plan.files(staging)["field"]
        if field.exists():
            stop.kept = f"kept the dataset and the field (or its last checkpoint) in {staging}"
        else:
            _discard(staging, output, created)
        raise
    except BaseException:
        _discard(staging, output, created)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return result


def _discard(staging: Path, output: Path, created: bool) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    if created and output.is_dir() and not any(output.iterdir()):
        output.rmdir()


def _resumed_plan(staging: Path, device: Optional[str]) -> FitPlan:
    """The plan of the unfinished run in ``staging``, re-resolved; its shape must not have changed."""
    try:
        saved = json.loads((staging / "plan.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise InputFileError(f"no unfinished fit to resume in {staging.parent} (no readable "
                             f"{STAGING}/plan.json)", option="resume") from None
    if saved.get("shape") is None:
        raise InputFileError("the unfinished run was started from a Shape object, not a file: fit it again",
                             option="resume")
    plan = plan_fit(saved["shape"], kind=saved["kind"], mode=saved["mode"], quick=saved["quick"],
                    sampling=_tuples(saved["sampling"]), training=_tuples(saved["training"]), model=saved["model"],
                    resolution=saved["resolution"], image_size=saved["image_size"],
                    evaluation=_tuples(saved["evaluation"]), device=device or saved["device"])
    if plan.source.get("sha256") != saved.get("sha256"):
        raise InputFileError(f"{saved['shape']} changed since the unfinished run started; fit it again "
                             "without resuming", option="resume")
    return plan


def _sample_and_warm_up(plan: FitPlan, quiet: bool) -> PointDataset:
    """Sample the shape; on a GPU, in a forked process while this one loads its GPU kernels.

    A new process loads each GPU kernel on first use: measured on an H100, about 6 s of a fit's training
    stage, as long as the sampling itself. The sampling is NumPy and libigl only (no torch, which does not
    survive a fork), and libigl holds the interpreter lock, so a thread would not overlap it."""
    if plan.device.type != "cuda":
        return sample(plan.shape, plan.mode, plan.sampling, source=plan.source, quiet=quiet)
    return _sample_in_fork(plan, quiet, meanwhile=lambda: _warm_up_if_possible(plan))


def _warm_up_if_possible(plan: FitPlan) -> None:
    """:func:`_warm_up`, best effort: a GPU that fails here fails again in training, with its error said there."""
    try:
        _warm_up(plan)
    except RuntimeError:
        pass


def _sample_in_fork(plan: FitPlan, quiet: bool, meanwhile: Callable[[], None]) -> PointDataset:
    """Sample the shape in a forked process, running ``meanwhile`` here in the meantime."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        dataset = pool.submit(sample, plan.shape, plan.mode, plan.sampling, source=plan.source, quiet=quiet)
        meanwhile()
        return dataset.result()


def _warm_up(plan: FitPlan) -> None:
    """Run the training step's and the queries' kernels once on throwaway data (see
    :func:`_sample_and_warm_up`)."""
    model = build_model(plan.model).to(plan.device)
    optimiser = torch.optim.Adam(model.parameters(), fused=True)
    x = torch.rand(min(plan.training.batch_size, 1 << 16), plan.shape.dim, device=plan.device)
    with using_matmul_precision(plan.training.matmul_precision):
        for _ in range(2):
            model(x).abs().mean().backward()
            optimiser.step()
    with torch.no_grad():
        if hasattr(model, "freeze"):
            model.freeze()
        model(torch.rand(CUDA_BATCH_SIZE, plan.shape.dim, device=plan.device)).sum().item()


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    """JSON gives lists where the configs hold tuples."""
    return {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}


def _run_stages(plan: FitPlan, folder: Path, quiet: bool, say: Callable[[str], None], started: float,
                fingerprint: Optional[str] = None) -> FitResult:
    files = plan.files(folder)
    seconds: dict[str, float] = {}

    def stage(label: str, since: float) -> float:
        seconds[label] = round(time.perf_counter() - since, 2)
        return time.perf_counter()

    now = time.perf_counter()
    if files["dataset"].exists():  # a resumed run
        dataset = PointDataset.load(files["dataset"])
        say(f"resumed with the dataset of the unfinished run; {files['dataset'].name}")
    else:
        dataset = _sample_and_warm_up(plan, quiet)
        dataset.save(files["dataset"])
        say(f"sampled {len(dataset.points)} {plan.mode} points [{time.perf_counter() - now:.1f} s]; "
            f"{files['dataset'].name}")
    now = stage("sample", now)

    state = training_state(files["field"]) if files["field"].exists() else None
    if files["field"].exists() and state is None:  # training had finished
        neural_field = NeuralField.load(files["field"], device=plan.device)
    else:
        trainer = Trainer(dataset, plan.model, plan.training, device=str(plan.device), output=files["field"],
                          log=files["log"], quiet=quiet, resume=state)
        say(f"training {plan.model['arch']} {plan.model['layers']} x {plan.model['width']} with "
            f"{trainer.loss_name} for {plan.training.epochs} epochs on {trainer.device}"
            + (" (bfloat16 products for 3/4 of them)" if plan.training.matmul_precision == "bf16" else "")
            + (f", from epoch {state['epoch']}" if state else ""))
        neural_field = trainer.run()
    now = stage("train", now)
    final = neural_field.summary["final"]
    say(f"trained [{seconds['train']:.1f} s]: test mean error {100 * final['mae_rel']:.2f}% of the diagonal; "
        f"{files['field'].name}")

    contour = shape_contour(neural_field, plan.resolution)
    if contour is None:
        files.pop("contour")
        say("the field has no level set in its box: no contour written")
    else:
        save_shape(contour, files["contour"])
        say(f"contoured at resolution {plan.resolution}: {files['contour'].name}")
    now = stage("contour", now)

    picture = overview_picture(neural_field, files["picture"], plan.image_size, plan.resolution)
    now = stage("render", now)
    say(f"rendered {picture.name}")

    metrics = evaluate_field(neural_field, plan.shape, plan.evaluation, contour=contour)
    stage("eval", now)
    result = FitResult(neural_field, metrics, dict(seconds, total=round(time.perf_counter() - started, 2)),
                       plan.settings(), files, fingerprint)
    with atomic_output(files["metrics"]) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
    return result


# --------------------------------------------------------------------------- collections


ENGINES = ("local", "ray")


def fit_many(inputs: Sequence[PathLike], output: PathLike, *, workers: Optional[int] = None, engine: str = "local",
             ray_address: Optional[str] = None, quick: bool = False, mode: Optional[str] = None,
             kind: Optional[str] = None, sampling: Optional[dict[str, Any]] = None,
             training: Optional[dict[str, Any]] = None, model: Optional[dict[str, Any]] = None,
             resolution: Optional[int] = None, image_size: Optional[int] = None,
             evaluation: Optional[dict[str, Any]] = None, device: Optional[str] = None, quiet: bool = True,
             say: Callable[[str], None] = lambda message: None) -> list[Row]:
    """Fit every shape of a collection, each into ``output/NAME/`` exactly as :func:`fit` would, in parallel.

    Parameters
    ----------
    inputs : shape files, ``builtin:NAME``, folders (searched recursively) and manifests (``.csv`` with a
        ``path`` column, or ``.txt``, one path per line), with per-shape options; see :mod:`lipsdf.collection`.
    output : the folder that gets one folder per shape, ``summary.csv`` and ``summary.md``.
    workers : shapes fitted at once (default: one per GPU when there are several, else half the cores).
        Locally each worker process gets ``cores / workers`` torch threads, and with several GPUs one GPU.
    engine : ``local`` (a pool of worker processes on this machine) or ``ray`` (one Ray task per shape).
    ray_address : the Ray cluster to join (``auto``, or ``host:port``); default: the running instance, or
        a new local one. Tasks write their outputs to ``output`` where they run, so on a cluster ``output``
        must be storage that every node sees.
    quick, mode, kind, sampling, training, model, resolution, image_size, evaluation, device : as in
        :func:`fit`, for every shape; a manifest's per-shape options replace them.

    Returns
    -------
    One :class:`~lipsdf.collection.Row` per input, in input order: ``done``, ``skipped`` (its outputs are
    complete and were made from the same input and settings: the fingerprint in its ``metrics.json``)
    or ``failed`` (with the reason). A bad input fails alone; the others go on. An interrupted run keeps
    the shapes finished so far and the checkpoints of those under way, which a rerun resumes.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     rows = fit_many(["builtin:circle", "missing.obj"], folder, workers=1, quick=True,
    ...                     sampling={"n": 1000, "n_test": 200}, training={"epochs": 1}, resolution=32,
    ...                     evaluation={"n_uniform": 200, "n_near": 200, "n_pairs": 200, "n_surface": 200})
    >>> [(row.name, row.status) for row in rows]
    [('circle', 'done'), ('missing', 'failed')]
    """
    from lipsdf.collection import find_inputs, split_options, write_summary

    if engine not in ENGINES:
        raise LipsdfError(f"unknown engine {engine!r}; choose local or ray", option="engine")
    if workers is not None and workers < 1:
        raise LipsdfError(f"workers must be at least 1, got {workers}", option="workers")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise InputFileError(f"{output} exists and is not a folder; name a folder for the outputs", option="output")
    items, missing = find_inputs(inputs, exclude=output)
    if not items and not missing:
        raise LipsdfError("no shape found in the inputs (files of a readable format, folders holding some, or "
                          "manifests)", option="inputs")
    common = {"quick": quick, "mode": mode, "kind": kind, "sampling": dict(sampling or {}),
              "training": dict(training or {}), "model": dict(model or {}), "evaluation": dict(evaluation or {}),
              "resolution": resolution, "image_size": image_size}
    config_fields = {"sampling": [f.name for f in dataclasses.fields(SamplingConfig)],
                     "training": [f.name for f in dataclasses.fields(TrainingConfig)],
                     "evaluation": [f.name for f in dataclasses.fields(EvaluationConfig)]}
    rows = {item.name: Row(item.name, "failed", input=item.source, reason=item.options["reason"]) for item in missing}
    order = [item.name for item in items] + [item.name for item in missing]
    tasks = []
    output.mkdir(parents=True, exist_ok=True)
    for item in items:
        folder = output / item.name
        try:
            own = split_options(item.options, config_fields)
            keywords = {key: {**value, **own.get(key, {})} if isinstance(value, dict) else own.get(key, value)
                        for key, value in common.items()}
            digest = fingerprint(item.source, keywords)
        except (LipsdfError, OSError) as exc:
            rows[item.name] = Row(item.name, "failed", input=item.source, reason=str(exc))
            continue
        finished = _up_to_date(folder, digest)
        if finished is not None:
            rows[item.name] = Row.from_metrics(item.name, "skipped", item.source, finished)
            continue
        tasks.append({"name": item.name, "source": item.source, "output": str(folder), "keywords": keywords,
                      "device": device, "fingerprint": digest, "resume": _resumable(folder, digest)})
    skipped = sum(row.status == "skipped" for row in rows.values())
    say(f"{len(items) + len(missing)} inputs: {len(tasks)} to fit, {skipped} up to date, {len(missing)} missing; "
        f"engine {engine}")
    workers = workers or _default_workers()
    run = _run_ray if engine == "ray" else _run_local
    try:
        with progress_bar(len(tasks), "fitting shapes", quiet=quiet, unit="shape") as bar:
            for row in run(tasks, workers, ray_address):
                rows[row.name] = row
                bar.update(1)
                chamfer = "no contour" if row.chamfer_l1_rel is None else f"Chamfer L1 {100 * row.chamfer_l1_rel:.3f}%"
                say(f"{row.name}: {row.status}" + (f" ({row.reason})" if row.reason else
                                                   f" in {row.seconds:.0f} s, {chamfer}"))
    except KeyboardInterrupt as stop:
        stop.kept = (f"kept the shapes finished so far and the checkpoints of those under way in {output}; "
                     "the same command again continues")
        raise
    finally:  # also when interrupted: the summary of what is finished
        ordered = [rows[name] for name in order if name in rows]
        write_summary(ordered, output)
    return ordered


def _default_workers() -> int:
    gpus = torch.cuda.device_count()
    return gpus if gpus > 1 else max(1, (os.cpu_count() or 1) // 2)


def _up_to_date(folder: Path, digest: str) -> Optional[dict[str, Any]]:
    """The metrics of a finished fit in ``folder`` made from the same input and settings, else None."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    complete = all((folder / name).is_file() for name in metrics.get("files", {}).values())
    return metrics if complete and metrics.get("fingerprint") == digest else None


def _resumable(folder: Path, digest: str) -> bool:
    try:
        return json.loads((folder / STAGING / "plan.json").read_text()).get("fingerprint") == digest
    except (OSError, json.JSONDecodeError):
        return False


def _fit_task(task: dict[str, Any]) -> Row:
    """Fit one shape of a collection (in a worker process or a Ray task); failures become rows."""
    started = time.perf_counter()
    global _BUSY
    _BUSY = True
    try:
        result = fit(task["source"], task["output"], device=task["device"], quiet=True,
                     fingerprint=task["fingerprint"], resume=task["resume"], **task["keywords"])
        return Row.from_metrics(task["name"], "done", task["source"], result.to_dict())
    except KeyboardInterrupt:  # the run is being stopped: fit has kept its checkpoint; leave quietly
        os._exit(128 + signal.SIGTERM)
    except (LipsdfError, OSError) as exc:
        reason = str(exc) if isinstance(exc, LipsdfError) else f"{exc.strerror or exc}: {exc.filename or ''}"
    except Exception as exc:  # noqa: BLE001 - one shape's failure must not stop the others
        reason = f"{type(exc).__name__}: {exc}"
    finally:
        _BUSY = False
    return Row(task["name"], "failed", round(time.perf_counter() - started, 2), input=task["source"],
               reason=" ".join(reason.split()))


def _init_worker(threads: int, gpus) -> None:
    """A local worker: its share of the cores, its own GPU, and SIGTERM as a clean stop."""
    torch.set_num_threads(threads)
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())  # before this process first touches CUDA
    signal.signal(signal.SIGTERM, _stop_worker)
    signal.signal(signal.SIGINT, _stop_worker)


_BUSY = False  # whether this worker process is fitting a shape
_TRACKER_WARNING = "ignore::UserWarning:multiprocessing.resource_tracker"


def _stop_worker(signal_number: int, frame) -> None:
    if _BUSY:
        raise KeyboardInterrupt  # fit's cleanup runs, and keeps a checkpoint for the rerun to resume
    os._exit(128 + signal_number)  # idle: nothing to clean up


def _run_local(tasks: list[dict[str, Any]], workers: int, ray_address: Optional[str]) -> Iterator[Row]:
    """A pool of ``workers`` processes (spawned: torch does not survive a fork), one shape per task."""
    if not tasks:
        return
    workers = min(workers, len(tasks))
    # A worker stopped while it holds a queue lock leaves a semaphore that multiprocessing's resource tracker
    # unlinks at exit, warning in several stderr lines; the tracker is a child interpreter, so it is told by -W.
    if _TRACKER_WARNING not in sys.warnoptions:
        sys.warnoptions.append(_TRACKER_WARNING)
    context = multiprocessing.get_context("spawn")
    gpus = None
    if torch.cuda.device_count() > 1:
        gpus = context.Queue()
        for index in range(torch.cuda.device_count()):
            gpus.put(index)
    pool = context.Pool(workers, initializer=_init_worker,
                        initargs=(max(1, (os.cpu_count() or 1) // workers), gpus))
    try:
        yield from pool.imap_unordered(_fit_task, tasks)
    except BaseException:
        pool.terminate()  # SIGTERM: workers still fitting keep their checkpoints
        raise
    finally:
        pool.close()
        pool.join()
        del pool
        gc.collect()  # finalise the pool's queues now rather than at interpreter exit


def _run_ray(tasks: list[dict[str, Any]], workers: int, ray_address: Optional[str]) -> Iterator[Row]:
    """One Ray task per shape, at most ``workers`` at once, each declaring its CPUs (and a GPU when the
    cluster has any); results come back as they finish."""
    try:
        import ray
    except ImportError:
        raise LipsdfError("the ray engine needs Ray: pip install 'lipsdf[ray]'", option="engine") from None
    if not tasks:
        return
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    resources = ray.cluster_resources()
    threads = max(1, int(resources.get("CPU", 1) // workers))
    remote = ray.remote(_ray_task).options(num_cpus=threads, num_gpus=1 if resources.get("GPU", 0) >= 1 else 0,
                                           max_retries=0)
    waiting, running = list(tasks), []
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                running.append(remote.remote(waiting.pop(0), threads))
            finished, running = ray.wait(running, num_returns=1)
            yield ray.get(finished[0])
    finally:
        for reference in running:
            ray.cancel(reference)


def _ray_task(task: dict[str, Any], threads: int) -> Row:
    torch.set_num_threads(threads)
    return _fit_task(task)
