"""One shape, end to end: plan, sample, size the training to the budget, train, contour, render, evaluate.

:func:`plan_fit` resolves every setting (:class:`~lipsdf.pipeline.options.FitOptions` over the shape's
:class:`~lipsdf.pipeline.recipes.Recipe`) into a :class:`FitPlan` before any work starts; :func:`fit` runs
it in a staging folder, moved into place at the end, and can resume an interrupted run; a
:class:`FitResult`'s :meth:`~FitResult.to_dict` is ``metrics.json``.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict, dataclass, field as dataclass_field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from lipsdf.dataset import PointDataset
from lipsdf.errors import InputFileError, LipsdfError
from lipsdf.evaluate import EvaluationConfig, against_points_note, evaluate_field
from lipsdf.field import CUDA_BATCH_SIZE, NeuralField, resolve_device
from lipsdf.files import PathLike, atomic_output
from lipsdf.geometry.io import load_shape, save_shape, shape_name, source_info
from lipsdf.geometry.shapes import PointCloud, Shape
from lipsdf.metrics import Metrics
from lipsdf.nn.models import build_model
from lipsdf.pipeline.budget import PROBE_SECONDS, Budget, TimeLimit
from lipsdf.pipeline.options import FitOptions
from lipsdf.pipeline.recipes import recipe_for
from lipsdf.query.contour import shape_contour
from lipsdf.render import overview_picture
from lipsdf.sampling import SamplingConfig, check_mode, sample
from lipsdf.training import (DEFAULT_ARCH, Trainer, TrainingConfig, build_optimiser, field_kind, model_config,
                             training_state, using_matmul_precision)

STAGING = ".lipsdf-fit"  # inside the output folder: the files of a fit under way
Say = Callable[[str], None]


@dataclass(frozen=True)
class FitPlan:
    """Everything :func:`fit` will do, resolved before any work starts (so a bad setting fails in seconds,
    not after sampling). ``budget`` is None when the epochs were given; until sized, ``training.epochs`` is
    a placeholder."""

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
    recipe: str
    budget: Optional[Budget] = None
    reference: Optional[Shape] = None  # what the field is evaluated against, when not the input
    reference_path: Optional[str] = None

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
                "resolution": self.resolution, "image_size": self.image_size, "device": str(self.device),
                "recipe": self.recipe, "budget": None if self.budget is None else self.budget.to_dict(),
                "reference": self.reference_path}

    def settings(self) -> dict[str, Any]:
        """The settings recorded in ``metrics.json``."""
        return {"shape": self.source.get("path", self.name), "mode": self.mode, "quick": self.quick,
                "recipe": self.recipe, "budget": None if self.budget is None else self.budget.to_dict(),
                "model": self.model, "sampling": asdict(self.sampling), "training": asdict(self.training),
                "resolution": self.resolution, "device": str(self.device), "reference": self.reference_path}


def plan_fit(shape: Union[PathLike, Shape], options: Optional[FitOptions] = None, **keywords: Any) -> FitPlan:
    """Load the shape and resolve every setting of :func:`fit` (same parameters), without running anything.

    Examples
    --------
    >>> plan = plan_fit("builtin:torus", quick=True)
    >>> plan.mode, plan.recipe, plan.budget.seconds, plan.model["arch"], plan.resolution
    ('signed', 'mesh-quick', 60.0, 'sll', 96)
    >>> plan_fit("builtin:torus", time="3m").budget.seconds, plan_fit("builtin:torus", training={"epochs": 5}).budget
    (180.0, None)
    """
    options = FitOptions.of(options, keywords)
    is_file = isinstance(shape, (str, Path))
    loaded = load_shape(shape, kind=options.kind) if is_file else shape
    mode = options.mode or ("signed" if loaded.has_inside else "unsigned")
    check_mode(loaded, mode)
    device = resolve_device(options.device)
    # signed fields fit distances (a scan's estimated from its points and normals) with fit-hinge
    recipe = recipe_for(loaded.dim, options.quick, str(device), options.recipe or "lipsdf", signed=mode == "signed",
                        scan=loaded.kind == "pointcloud")
    defaults = dict(recipe.training)
    if mode in ("dist", "sal"):  # the paper's hKR trains labels; these modes keep their own losses
        defaults.pop("loss", None)
    default_arch = options.model.get("arch", DEFAULT_ARCH[mode]) == DEFAULT_ARCH[mode] == "sll"
    network = model_config(mode, loaded.dim, **{**(recipe.model if default_arch else {}), **options.model})
    build_model(network)  # an impossible network (say, width 1) fails now, not after sampling
    if not default_arch:  # the recipe's optimiser was measured on its own network, not on the baselines
        defaults = {key: value for key, value in defaults.items()
                    if key not in ("lr", "adam_beta2", "optimiser", "muon_lr")}
    asked = options.seeded("training")
    if options.recipe is not None:
        asked["recipe"] = options.recipe
    budget = None if "epochs" in asked else Budget(options.time or recipe.budget, recipe.finish_seconds)
    training = TrainingConfig(**{**asdict(TrainingConfig()), **defaults, **asked, "epochs": asked.get("epochs", 1)})
    training.margins(field_kind(mode, loaded.has_inside))  # so do margins that this kind of field cannot take
    resolution = options.resolution or recipe.resolution
    return FitPlan(
        shape=loaded, name=shape_name(shape) if is_file else "shape", source=source_info(shape) if is_file else {},
        mode=mode, sampling=SamplingConfig(**{**asdict(SamplingConfig()), **recipe.sampling,
                                              **options.seeded("sampling")}),
        training=training, model=network,
        evaluation=EvaluationConfig(**{**asdict(EvaluationConfig()), "resolution": resolution,
                                       **recipe.evaluation, **options.seeded("evaluation")}),
        resolution=resolution, image_size=options.image_size or recipe.image_size, device=device,
        quick=options.quick, recipe=recipe.name, budget=budget, reference=_reference(options.reference, loaded),
        reference_path=None if options.reference is None else source_info(options.reference)["path"])


def _reference(path: Optional[str], shape: Shape) -> Optional[Shape]:
    """The shape ``--reference`` names, checked against the input's dimension (None without one)."""
    if path is None:
        return None
    reference = load_shape(path)
    if reference.dim != shape.dim:
        raise LipsdfError(f"the reference {path} is {reference.dim}D but the shape is {shape.dim}D",
                          option="reference")
    return reference


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
        if self.field.metadata.get("diagnosis"):
            extra["diagnosis"] = self.field.metadata["diagnosis"]
        if self.field.summary.get("stopped"):
            extra["stopped"] = self.field.summary["stopped"]
        return {**self.metrics.to_dict(), "seconds": self.seconds, "settings": self.settings,
                "trained_epochs": self.field.summary.get("epochs"),
                "files": {role: path.name for role, path in self.files.items()}, **extra}


def fit(shape: Union[PathLike, Shape, None], output: PathLike, options: Optional[FitOptions] = None, *,
        quiet: bool = True, say: Say = lambda message: None, resume: bool = False,
        fingerprint: Optional[str] = None, **keywords: Any) -> FitResult:
    """Fit a 1-Lipschitz distance field to a shape and write everything about it into ``output``.

    Parameters
    ----------
    shape : a shape file, ``builtin:NAME``, or a Shape in world units.
    output : folder for the files (made if missing): ``NAME_MODE.npz`` (dataset), ``NAME.pt``
        (field), ``NAME.jsonl`` (training log), ``NAME_mesh.obj`` (3D) or ``NAME_contour.obj`` (2D),
        ``NAME.png`` (picture) and ``metrics.json`` (``lipsdf eval``'s metrics, the stages' times
        and the settings).
    options : a :class:`~lipsdf.pipeline.options.FitOptions`; its fields can also be given as keywords
        (``quick=True``, ``time="3m"``, ``training={"epochs": 40}``), which go on top of it.
    quiet : no progress bars.
    say : called with one line per finished stage.
    resume : continue the unfinished run in ``output`` (interrupted or killed after its first training
        checkpoint) with the settings it started with (its epochs too); ``shape`` and the other settings
        are then ignored. A resumed fit ends with the same field as an uninterrupted one (on CPU).
    fingerprint : recorded in ``metrics.json`` (and the staging folder's ``plan.json``); ``fit_many`` keeps
        there the digest of the input and settings, to skip shapes that are up to date.

    The fit keeps to its time budget (``time``, default the recipe's: 3 minutes on a CPU, 1 with ``quick``): it measures its training step after sampling and trains the epochs that
    fill the budget. ``training={"epochs": N}`` trains exactly N instead.

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
    options = FitOptions.of(options, keywords)
    if resume:
        plan = _resumed_plan(staging, options.device)
    else:
        plan = plan_fit(shape, options)
        if staging.exists():
            shutil.rmtree(staging)
            say(f"discarded the files of an unfinished run in {staging}")
        if plan.budget is not None:
            say(plan.budget.describe())
    created = not output.exists()
    staging.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_plan(staging, plan, fingerprint)
    # Everything is written to a staging folder inside ``output`` and moved into place at the end, so a run
    # that fails leaves no half of its files behind (and overwrites nothing until then). An interrupted one
    # keeps it only once training has written a checkpoint, to resume from.
    try:
        result = _run_stages(plan, staging, quiet, say, started, fingerprint)
        for role, path in list(result.files.items()):
            os.replace(path, output / path.name)
            result.files[role] = output / path.name
    except KeyboardInterrupt as stop:  # Ctrl-C, or Interrupted (a signal) from the command line
        if plan.files(staging)["field"].exists():
            stop.kept = f"kept the dataset and the field (or its last checkpoint) in {staging}"
        else:
            _discard(staging, output, created)
        raise
    except BaseException:
        _discard(staging, output, created)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return result


def write_plan(staging: Path, plan: FitPlan, fingerprint: Optional[str]) -> None:
    """``plan.json`` of a fit under way in ``staging``: what a resume of it plans again."""
    with atomic_output(staging / "plan.json") as tmp:
        tmp.write_text(json.dumps(dict(plan.to_dict(), fingerprint=fingerprint), indent=2))


def _discard(staging: Path, output: Path, created: bool) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    if created and output.is_dir() and not any(output.iterdir()):
        output.rmdir()


def _resumed_plan(staging: Path, device: Optional[str]) -> FitPlan:
    """The plan of the unfinished run in ``staging``, re-resolved with its epochs; its shape must not have
    changed."""
    try:
        saved = json.loads((staging / "plan.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise InputFileError(f"no unfinished fit to resume in {staging.parent} (no readable "
                             f"{STAGING}/plan.json)", option="resume") from None
    if saved.get("shape") is None:
        raise InputFileError("the unfinished run was started from a Shape object, not a file: fit it again",
                             option="resume")
    plan = plan_fit(saved["shape"], FitOptions(
        kind=saved["kind"], mode=saved["mode"], quick=saved["quick"], sampling=_tuples(saved["sampling"]),
        training=_tuples(saved["training"]), model=saved["model"], resolution=saved["resolution"],
        image_size=saved["image_size"], evaluation=_tuples(saved["evaluation"]), device=device or saved["device"],
        reference=saved.get("reference")))
    if plan.source.get("sha256") != saved.get("sha256"):
        raise InputFileError(f"{saved['shape']} changed since the unfinished run started; fit it again "
                             "without resuming", option="resume")
    budget = saved.get("budget")
    return replace(plan, recipe=saved.get("recipe", plan.recipe), budget=None if budget is None else Budget(**budget))


def size_training(plan: FitPlan, dataset: PointDataset, started: float) -> FitPlan:
    """``plan`` with its epochs fixed by its budget: the training step timed on ``dataset`` on this machine,
    and the epochs that fill the time left of a fit that began at ``started`` (``time.perf_counter()``)."""
    probe = Trainer(dataset, plan.model, plan.training, device=str(plan.device))
    cost = probe.step_cost(PROBE_SECONDS if plan.device.type == "cpu" else PROBE_SECONDS / 3)
    budget = plan.budget.sized(cost, time.perf_counter() - started, probe.steps_per_epoch)
    return replace(plan, budget=budget, training=replace(plan.training, epochs=budget.epochs))


def _run_stages(plan: FitPlan, folder: Path, quiet: bool, say: Say, started: float,
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
        dataset = sample_dataset(plan, quiet)
        dataset.save(files["dataset"])
        for line in dataset.metadata.get("diagnosis", {}).get("lines", []):
            say(line)
        say(f"sampled {len(dataset.points)} {plan.mode} points [{time.perf_counter() - now:.1f} s]; "
            f"{files['dataset'].name}")
    now = stage("sample", now)
    if plan.budget is not None and plan.budget.epochs is None:
        plan = size_training(plan, dataset, started)
        write_plan(folder, plan, fingerprint)  # a resume repeats these epochs
        say(plan.budget.describe())
        now = stage("plan", now)
    neural_field = _train(plan, dataset, files, quiet, say, started)
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

    truth = plan.reference or plan.shape
    note = against_points_note(truth)
    if note:
        say(f"note: {note}")
    metrics = evaluate_field(neural_field, truth, plan.evaluation, contour=contour)
    stage("eval", now)
    result = FitResult(neural_field, metrics, dict(seconds, total=round(time.perf_counter() - started, 2)),
                       plan.settings(), files, fingerprint)
    with atomic_output(files["metrics"]) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
    return result


def _train(plan: FitPlan, dataset: PointDataset, files: dict[str, Path], quiet: bool, say: Say,
           started: float) -> NeuralField:
    """Train the plan's field (or continue its checkpoint, or load it if training had finished); a fit
    that began at ``started`` with a budget stops training where the budget's training time ends."""
    state = training_state(files["field"]) if files["field"].exists() else None
    if files["field"].exists() and state is None:  # training had finished
        return NeuralField.load(files["field"], device=plan.device)
    # a resumed run has its epochs, not its budget: the time before the interruption is not counted
    limit = [] if plan.budget is None or state else [TimeLimit(started + plan.budget.seconds
                                                               - plan.budget.finish_seconds)]
    trainer = Trainer(dataset, plan.model, plan.training, device=str(plan.device), output=files["field"],
                      log=files["log"], quiet=quiet, resume=state, callbacks=limit)
    say(f"training {plan.model['arch']} {plan.model['layers']} x {plan.model['width']} with "
        f"{trainer.loss_name} for {plan.training.epochs} epochs on {trainer.device}"
        + (" (bfloat16 products for 3/4 of them)" if plan.training.matmul_precision == "bf16" else "")
        + (f", from epoch {state['epoch']}" if state else ""))
    neural_field = trainer.run()
    if neural_field.summary.get("stopped"):
        say(neural_field.summary["stopped"])
    if plan.budget is not None:  # the field says what its epochs were chosen for
        neural_field.summary["budget"] = plan.budget.to_dict()
        neural_field.save(files["field"])
    return neural_field


def sample_dataset(plan: FitPlan, quiet: bool, warm_up: bool = True) -> PointDataset:
    """The plan's dataset, sampled as a fit samples it: on a GPU, a polyline's or a mesh's geometry there,
    a point cloud's in a forked process while this one loads its GPU kernels (``warm_up``: the kernels of
    a single network's training, which a stacked run does not need).

    A new process loads each GPU kernel on first use: measured on an H100, about 6 s of a fit's training
    stage, as long as its sampling by libigl on the CPU (benchmarks/results/gpu.md). A point cloud's
    sampling is NumPy and libigl only (no torch, which does not survive a fork), and libigl holds the
    interpreter lock, so a thread would not overlap it."""
    if plan.device.type != "cuda":
        return sample(plan.shape, plan.mode, plan.sampling, source=plan.source, quiet=quiet)
    if not isinstance(plan.shape, PointCloud):
        dataset = sample(plan.shape, plan.mode, plan.sampling, source=plan.source, quiet=quiet,
                         device=str(plan.device))
        if warm_up:
            _warm_up_if_possible(plan)
        return dataset
    return sample_in_fork(plan, quiet, meanwhile=lambda: _warm_up_if_possible(plan) if warm_up else None)


def _warm_up_if_possible(plan: FitPlan) -> None:
    """:func:`_warm_up`, best effort: a GPU that fails here fails again in training, with its error said there."""
    try:
        _warm_up(plan)
    except RuntimeError:
        pass


def sample_in_fork(plan: FitPlan, quiet: bool, meanwhile: Callable[[], None]) -> PointDataset:
    """Sample the plan's shape in a forked process, running ``meanwhile`` here in the meantime."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        dataset = pool.submit(sample, plan.shape, plan.mode, plan.sampling, source=plan.source, quiet=quiet)
        meanwhile()
        return dataset.result()


def _warm_up(plan: FitPlan) -> None:
    """Run the training step's and the queries' kernels once on throwaway data (see
    :func:`sample_dataset`)."""
    model = build_model(plan.model).to(plan.device)
    optimiser = build_optimiser(model, plan.training, plan.device)
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
