"""Training a field on a :class:`~lipsdf.dataset.PointDataset`.

The loss follows the dataset's mode:

==========  ===========================  ==========================================
mode        loss                         what the network learns
==========  ===========================  ==========================================
signed      ``hkr`` (the method)         inside (-1) vs outside (+1): signed distance
unsigned    ``hkr``                      surface (-1) vs elsewhere (+1): unsigned distance
dist        ``fit`` (+ eikonal term)     known distances (baselines, any architecture)
sal         ``sal`` or ``sald``          unsigned distances, sign-agnostic (SAL / SALD)
==========  ===========================  ==========================================

Two recipes. ``paper``: the public code's defaults (Adam, lr 5e-4, margin
0.01, lambda warmed up 1 -> 10 -> 100 over the first epochs, constant lr and
margin). ``lipsdf`` (default): the same start, then the margin shrinks
geometrically to ``final_margin`` and the learning rate decays on a cosine, so
that the zero set, which hKR only pins down to about twice the margin, ends
closer to the surface. ``benchmarks/train.py`` compares the two.

All training tensors live on the device; a batch is a slice of a shuffled
index, with no per-batch Python data loading.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from lipsdf.dataset import PointDataset
from lipsdf.errors import InputFileError, LipsdfError, ModeError
from lipsdf.field import NeuralField, resolve_device
from lipsdf.files import PathLike
from lipsdf.losses import DEFAULT_LOSS, FIT_NORMS, LOSSES, Batch, losses_for
from lipsdf.metrics import bounding_box_diagonal, distance_errors
from lipsdf.nn.models import ARCHITECTURES, build_model
from lipsdf.progress import progress_bar

RECIPES = ("lipsdf", "paper")
DEFAULT_ARCH = {"signed": "sll", "unsigned": "sll", "dist": "sll", "sal": "mlp"}


class TrainingDiverged(LipsdfError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainingConfig:
    """How to train. Lengths (margins) are in unit-box units, like the dataset's arrays.

    Attributes
    ----------
    epochs : passes over the training points.
    batch_size : points per optimisation step.
    lr : Adam's learning rate (the start of the decay in the ``lipsdf`` recipe).
    margin : hKR margin (the start of the shrinking in the ``lipsdf`` recipe).
    final_margin : hKR margin at the end (``lipsdf`` recipe; default ``margin / 4``).
    lam : hKR hinge weight, reached after the warm-up ``lam/100``, ``lam/10``, ``lam``.
    recipe : ``lipsdf`` (shrinking margin, cosine lr decay) or ``paper`` (both constant).
    loss : ``hkr``, ``fit``, ``sal`` or ``sald``; default from the dataset's mode.
    fit_norm : ``l1`` or ``mse`` for the ``fit`` loss.
    eikonal : weight of the eikonal term of the ``fit`` loss (0 turns it off).
    sald_weight : weight of SALD's gradient term.
    seed : seeds the initialisation and the shuffling; same seed, same field (on CPU).
    checkpoint_every : write the field every this many epochs (0: only at the end).
    compile : run the training steps through ``torch.compile`` (fuses the element-wise work
        between matrix products: 1.18x faster for SLL 20 x 128 at batch 4096 on a 2-core CPU;
        the first epoch pays a few seconds, more with a cold cache, of compilation). Not for
        losses that differentiate the input gradient (``sald``, ``fit`` with an eikonal term).
    """

    epochs: int = 100
    batch_size: int = 4096
    lr: float = 5e-4
    margin: float = 0.01
    final_margin: Optional[float] = None
    lam: float = 100.0
    recipe: str = "lipsdf"
    loss: Optional[str] = None
    fit_norm: str = "l1"
    eikonal: float = 0.1
    sald_weight: float = 0.1
    seed: int = 0
    checkpoint_every: int = 10
    compile: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise LipsdfError("epochs and batch size must be positive")
        if not (self.lr > 0 and self.margin > 0 and self.lam > 0):
            raise LipsdfError("lr, margin and lam must be positive")
        if self.final_margin is not None and not 0 < self.final_margin <= self.margin:
            raise LipsdfError(f"final margin must lie in (0, margin = {self.margin}], got {self.final_margin}",
                              option="final_margin")
        if self.recipe not in RECIPES:
            raise LipsdfError(f"unknown recipe {self.recipe!r}; choose lipsdf or paper", option="recipe")
        if self.loss is not None and self.loss not in LOSSES:
            raise LipsdfError(f"unknown loss {self.loss!r}; choose one of: {', '.join(LOSSES)}", option="loss")
        if self.fit_norm not in FIT_NORMS:
            raise LipsdfError(f"unknown fit norm {self.fit_norm!r}; choose l1 or mse")
        if self.eikonal < 0 or self.sald_weight < 0 or self.checkpoint_every < 0:
            raise LipsdfError("eikonal weight, SALD weight and checkpoint interval must be >= 0")

    @property
    def end_margin(self) -> float:
        if self.recipe == "paper":
            return self.margin
        return self.final_margin if self.final_margin is not None else self.margin / 4


@dataclass
class Schedule:
    """Margin, lambda and learning rate as functions of the epoch and the progress through training."""

    config: TrainingConfig
    total_steps: int

    def warmup_epochs(self) -> int:
        return max(1, round(0.05 * self.config.epochs))

    def progress(self, step: int) -> float:
        """0 -> 1 over the first 80% of the steps, then 1: the ``lipsdf`` recipe's margin and lambda ramps."""
        return min(step / max(0.8 * self.total_steps, 1), 1.0)

    def lam(self, epoch: int, step: int) -> float:
        if self.config.recipe == "paper":
            stage = epoch // self.warmup_epochs()
            return self.config.lam * (0.01, 0.1, 1.0)[min(stage, 2)]
        return self.config.lam * 0.01 ** (1.0 - self.progress(step))

    def margin(self, step: int) -> float:
        if self.config.recipe == "paper":
            return self.config.margin
        return self.config.margin * (self.config.end_margin / self.config.margin) ** self.progress(step)

    def lr_factor(self, step: int) -> float:
        if self.config.recipe == "paper":
            return 1.0
        floor = 0.02
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step / max(self.total_steps, 1), 1.0)))


MODEL_SIZES = {"sll": (20, 128), "ortho": (8, 128), "mlp": (8, 256), "siren": (5, 256)}  # layers, width


def model_config(mode: str, dim: int, arch: Optional[str] = None, layers: Optional[int] = None,
                 width: Optional[int] = None) -> dict[str, Any]:
    """The model config for a dataset of ``mode`` in ``dim`` dimensions: the paper's SLL 20 x 128 for hKR,
    a geometric-init MLP for SAL; ``arch``, ``layers`` and ``width`` override.

    Examples
    --------
    >>> model_config("signed", 3)
    {'arch': 'sll', 'dim': 3, 'layers': 20, 'width': 128}
    """
    arch = arch or DEFAULT_ARCH[mode]
    if arch not in ARCHITECTURES:
        raise LipsdfError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}", option="arch")
    config: dict[str, Any] = {"arch": arch, "dim": dim, "layers": layers or MODEL_SIZES[arch][0],
                              "width": width or MODEL_SIZES[arch][1]}
    if arch == "mlp":
        config["activation"] = "softplus"
        if mode == "sal":
            config["init"] = "geometric"
    return config


class EpochLog:
    """One record per epoch, appended to a ``.jsonl`` or ``.csv`` file as training goes."""

    def __init__(self, path: Optional[PathLike], records: Sequence[dict[str, Any]] = ()) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        if self.path is not None:
            if self.path.suffix.lower() not in (".jsonl", ".csv"):
                raise LipsdfError(f"training log {self.path} must end in .jsonl or .csv", option="log")
            if not self.path.parent.is_dir():
                raise LipsdfError(f"log directory {self.path.parent} does not exist; create it first", option="log")
            self.path.write_text("")
        for record in records:  # a resumed run's log restarts from its checkpoint's records
            self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path is None:
            return
        with open(self.path, "a", newline="") as handle:
            if self.path.suffix.lower() == ".jsonl":
                handle.write(json.dumps(record) + "\n")
                return
            writer = csv.DictWriter(handle, fieldnames=list(self.records[0]), extrasaction="ignore")
            if len(self.records) == 1:
                writer.writeheader()
            writer.writerow(record)


@dataclass
class _Tensors:
    """The dataset's arrays as float32 tensors on the training device."""

    points: torch.Tensor
    targets: torch.Tensor
    surface_points: torch.Tensor
    surface_normals: Optional[torch.Tensor]
    test_points: torch.Tensor

    @classmethod
    def of(cls, dataset: PointDataset, device: torch.device) -> "_Tensors":
        def tensor(array):
            return torch.as_tensor(np.asarray(array, dtype=np.float32), device=device)

        targets = dataset.labels if "labels" in dataset.arrays else dataset.distances
        normals = dataset.arrays.get("surface_normals")
        return cls(tensor(dataset.points), tensor(targets), tensor(dataset.surface_points),
                   None if normals is None else tensor(normals), tensor(dataset.test_points))


@dataclass
class _Run:
    """The state of one training run between epochs."""

    model: torch.nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    optimiser: torch.optim.Optimizer
    data: _Tensors
    generator: torch.Generator
    schedule: Schedule
    log: EpochLog
    batch: int
    steps_per_epoch: int
    started: float
    step: int = 0
    first_epoch: int = 0
    checkpointed: int = 0  # the epoch of the last checkpoint written
    good_state: Optional[dict[str, torch.Tensor]] = None


Checkpoint = Callable[[NeuralField, int, bool], None]


@dataclass
class Trainer:
    """Train a network on a dataset and return a :class:`~lipsdf.field.NeuralField`.

    Parameters
    ----------
    dataset : the training data (any mode).
    model_config : see :func:`~lipsdf.nn.models.build_model`; default :func:`model_config` of the dataset.
    config : a :class:`TrainingConfig`.
    device : ``cpu``, ``cuda`` or ``None`` (CUDA when present).
    output : the field file, written at each checkpoint and at the end (optional).
    log : per-epoch log, ``.jsonl`` or ``.csv`` (optional).
    quiet : no progress bar.
    callback : called with each epoch's log record (e.g. to plot progress live).
    on_checkpoint : called with the field, the epoch and whether it is the last, at each checkpoint and at
        the end (e.g. :func:`lipsdf.render.preview_writer` draws the field each time).
    resume : a checkpoint's training state (:func:`read_checkpoint`): the run continues from it, with its
        optimiser state, schedules and random state, and ends with the same weights as an uninterrupted run.

    Checkpoints before the last epoch carry the training state, so that a killed run can resume; the
    final field file does not.

    Examples
    --------
    >>> from lipsdf.sampling import sample
    >>> from lipsdf.geometry.primitives import circle
    >>> data = sample(circle(), "signed", n=2000, n_test=400, seed=0)
    >>> config = TrainingConfig(epochs=2, batch_size=500, checkpoint_every=0)
    >>> field = Trainer(data, {"arch": "sll", "dim": 2, "layers": 2, "width": 16}, config).run()
    >>> field.kind, field.summary["epochs"], field.summary["complete"]
    ('signed', 2, True)
    """

    dataset: PointDataset
    model_config: Optional[dict[str, Any]] = None
    config: TrainingConfig = field(default_factory=TrainingConfig)
    device: Optional[str] = None
    output: Optional[PathLike] = None
    log: Optional[PathLike] = None
    quiet: bool = True
    callback: Optional[Callable[[dict[str, Any]], None]] = None
    on_checkpoint: Optional[Checkpoint] = None
    resume: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        mode = self.dataset.mode
        self.loss_name = self.config.loss or DEFAULT_LOSS[mode]
        if mode not in LOSSES[self.loss_name].modes:
            raise ModeError(f"the {self.loss_name} loss trains on {' or '.join(LOSSES[self.loss_name].modes)} "
                            f"datasets, but this one is {mode}; train it with {' or '.join(losses_for(mode))}, or "
                            f"sample the shape in {LOSSES[self.loss_name].modes[0]} mode", option="loss")
        if self.loss_name == "sald" and "surface_normals" not in self.dataset.arrays:
            if self.config.loss == "sald":
                raise ModeError("the sald loss needs surface normals, which this dataset does not have; "
                                "train it with sal", option="loss")
            self.loss_name = "sal"
        self.loss = LOSSES[self.loss_name]
        self.model_config = dict(self.model_config or model_config(mode, self.dataset.dim))
        if self.model_config.get("dim", self.dataset.dim) != self.dataset.dim:
            raise LipsdfError(f"the model takes {self.model_config['dim']}D input but the dataset is "
                              f"{self.dataset.dim}D")
        self.model_config["dim"] = self.dataset.dim
        self.device = resolve_device(self.device)
        signed_truth = bool(self.dataset.metadata.get("signed_truth", True))
        self.kind = "unsigned" if mode == "unsigned" or (mode in ("dist", "sal") and not signed_truth) else "signed"
        self.diagonal = bounding_box_diagonal(self.dataset.world("surface_points"))

    # ------------------------------------------------------------------ the loop

    def run(self) -> NeuralField:
        """Train; returns the field (also written to ``output`` when given)."""
        run = self._start()
        with progress_bar(self.config.epochs, "training", quiet=self.quiet, unit="epoch") as bar:
            bar.update(run.first_epoch)
            try:
                for epoch in range(run.first_epoch, self.config.epochs):
                    mean_loss = self._train_epoch(run, epoch)
                    field, record = self._end_epoch(run, epoch, mean_loss)
                    bar.update(1)
                    bar.set_postfix_str(f"loss {mean_loss:.4g}, test MAE {record['mae']:.3g}")
            except KeyboardInterrupt as stop:
                if not getattr(stop, "kept", "") and self.output is not None and run.checkpointed:
                    stop.kept = f"kept the checkpoint of epoch {run.checkpointed} in {self.output}"
                raise
        return field

    def _start(self) -> _Run:
        """Seed, build the model, optimiser and schedule, and move the data to the device."""
        config = self.config
        torch.manual_seed(config.seed)
        model = build_model(self.model_config).to(self.device)
        model.train()
        data = _Tensors.of(self.dataset, self.device)
        generator = torch.Generator(device=self.device).manual_seed(config.seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        forward = self._compiled(model) if config.compile else model
        n = len(data.points)
        batch = min(config.batch_size, n)
        steps_per_epoch = math.ceil(n / batch)
        schedule = Schedule(config, steps_per_epoch * config.epochs)
        if self.resume is None:
            log = EpochLog(self.log)  # after everything that can reject the inputs, so no stray log is left
            return _Run(model, forward, optimiser, data, generator, schedule, log, batch, steps_per_epoch,
                        time.perf_counter())
        state = self.resume
        if json.loads(state["dataset"])["digest"] != self.dataset.digest():
            raise LipsdfError("this dataset is not the one the checkpoint was trained on; resume with that one",
                              option="resume")
        model.load_state_dict(state["weights"])
        optimiser.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"].to(generator.get_state().device))
        torch.set_rng_state(state["torch_rng"])
        log = EpochLog(self.log, json.loads(state["log"]))
        return _Run(model, forward, optimiser, data, generator, schedule, log, batch, steps_per_epoch,
                    time.perf_counter() - float(state["seconds"]), step=int(state["step"]),
                    first_epoch=int(state["epoch"]), checkpointed=int(state["epoch"]),
                    good_state=copy.deepcopy(model.state_dict()))

    def _train_epoch(self, run: _Run, epoch: int) -> float:
        """One pass over the shuffled points; returns the mean loss (the epoch's one device sync)."""
        config, data = self.config, run.data
        n = len(data.points)
        order = torch.randperm(n, device=self.device, generator=run.generator)
        total = torch.zeros((), device=self.device)
        for start in range(0, n, run.batch):
            index = order[start: start + run.batch]
            batch = Batch(data.points[index], data.targets[index], run.schedule.margin(run.step),
                          run.schedule.lam(epoch, run.step), config.fit_norm, config.eikonal, config.sald_weight)
            if self.loss_name == "sald":
                pick = torch.randint(len(data.surface_points), (max(len(index) // 4, 1),), device=self.device,
                                     generator=run.generator)
                batch.surface_points, batch.surface_normals = data.surface_points[pick], data.surface_normals[pick]
            for group in run.optimiser.param_groups:
                group["lr"] = config.lr * run.schedule.lr_factor(run.step)
            loss = self.loss.objective(run.forward, batch)
            run.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            run.optimiser.step()
            total += loss.detach()
            run.step += 1
        return float(total) / run.steps_per_epoch

    def _end_epoch(self, run: _Run, epoch: int, mean_loss: float) -> tuple[NeuralField, dict[str, Any]]:
        """Check the loss, log the epoch with its test errors, and write a checkpoint when one is due."""
        if not math.isfinite(mean_loss) or not _finite(run.model):
            self._diverged(epoch, mean_loss, run.good_state, run.log)
        run.good_state = copy.deepcopy(run.model.state_dict())
        record = {"epoch": epoch + 1, "step": run.step, "loss": mean_loss,
                  "lam": run.schedule.lam(epoch, run.step - 1), "margin": run.schedule.margin(run.step),
                  "lr": run.optimiser.param_groups[0]["lr"]}
        field = self._field(copy.deepcopy(run.model), record["margin"])
        record.update(self._test_metrics(field))
        record["seconds"] = round(time.perf_counter() - run.started, 3)
        run.log.write(record)
        if self.callback is not None:
            self.callback(record)
        last = epoch + 1 == self.config.epochs
        if last or (self.config.checkpoint_every and (epoch + 1) % self.config.checkpoint_every == 0):
            field.summary = self._summary(record, run.log, complete=last)
            self._write(field, epoch + 1, last, None if last else self._training_state(run, epoch + 1))
            run.checkpointed = epoch + 1
        return field, record

    def _training_state(self, run: _Run, epochs_done: int) -> dict[str, Any]:
        """Everything a resumed run needs beyond the weights (tensors and plain values only)."""
        return {"epoch": epochs_done, "step": run.step, "optimizer": run.optimiser.state_dict(),
                "generator": run.generator.get_state().cpu(), "torch_rng": torch.get_rng_state(),
                "log": json.dumps(run.log.records), "seconds": time.perf_counter() - run.started,
                "config": json.dumps(asdict(self.config)), "model_config": json.dumps(self.model_config),
                "dataset": json.dumps({"path": None if self.dataset.path is None else str(self.dataset.path),
                                       "digest": self.dataset.digest()})}

    def _compiled(self, model: torch.nn.Module) -> torch.nn.Module:
        """``torch.compile(model)`` for the steps; the field keeps the plain model (same parameters)."""
        if self.loss.second_order(self.config.eikonal):
            raise LipsdfError(f"torch.compile cannot train the {self.loss_name} loss"
                              f"{' with an eikonal term' if self.loss_name == 'fit' else ''}: it differentiates "
                              "the input gradient, which torch.compile does not support; train without compiling"
                              f"{' or with an eikonal weight of 0' if self.loss_name == 'fit' else ''}",
                              option="compile")
        return torch.compile(model)

    # ------------------------------------------------------------------ fields, metrics, files

    def _field(self, model: torch.nn.Module, margin: float) -> NeuralField:
        """A field around ``model`` (which it takes over); unsigned hKR fields are shifted by the margin."""
        offset = margin if self.kind == "unsigned" and self.loss_name == "hkr" else 0.0
        return NeuralField(model, self.dataset.normalization, self.model_config, kind=self.kind,
                           offset=offset, metadata=self.dataset.metadata, device=self.device)

    def _test_metrics(self, field: NeuralField) -> dict[str, float]:
        predicted = field(self.dataset.world("test_points"))
        signed = self.kind == "signed" and bool(self.dataset.metadata.get("signed_truth", True))
        return distance_errors(predicted, self.dataset.world("test_distances"), signed, self.diagonal)

    def _summary(self, record: dict[str, Any], log: EpochLog, complete: bool) -> dict[str, Any]:
        return {
            "loss": self.loss_name,
            "epochs": record["epoch"],
            "complete": complete,
            "config": asdict(self.config),
            "device": str(self.device),
            "diagonal": self.diagonal,
            "seconds": record["seconds"],
            "final": record,
            "best_mae": min(r["mae"] for r in log.records),
        }

    def _write(self, field: NeuralField, epoch: int, last: bool, training: Optional[dict[str, Any]]) -> None:
        if self.output is not None:
            field.save(self.output, training=training)
        if self.on_checkpoint is not None:
            self.on_checkpoint(field, epoch, last)

    def _diverged(self, epoch: int, loss: float, good_state, log: EpochLog) -> None:
        kept = ""
        if good_state is not None and self.output is not None:
            model = build_model(self.model_config)
            model.load_state_dict(good_state)
            record = log.records[-1]
            field = self._field(model, record["margin"])
            field.summary = self._summary(record, log, complete=False)
            field.save(self.output)
            kept = f"; kept the field of epoch {epoch} in {self.output}"
        raise TrainingDiverged(f"training diverged at epoch {epoch + 1} (loss {loss}){kept}; "
                               "try a smaller learning rate or hinge weight (lam)", option="lr")


def read_checkpoint(path: PathLike) -> tuple[TrainingConfig, dict[str, Any], dict[str, Any]]:
    """The training config, model config and training state of an unfinished run's checkpoint, to pass to
    ``Trainer(..., resume=state)``; a complete field or a foreign file is a clear error.

    The checkpoint is first loaded as a field (every check of :meth:`NeuralField.load`), then its training
    state is read with ``weights_only=True``.
    """
    state = training_state(path)
    if state is None:
        raise InputFileError(f"{path} is a finished field, not a checkpoint of an unfinished run: nothing to "
                             "resume", option="resume")
    try:
        return TrainingConfig(**json.loads(state["config"])), json.loads(state["model_config"]), state
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(f"{path} has a malformed training state ({type(exc).__name__}: {exc})",
                             option="resume") from None


def training_state(path: PathLike) -> Optional[dict[str, Any]]:
    """The training state (with the weights) of a checkpoint, or None for a finished field."""
    NeuralField.load(path)  # every check of a field file first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        contents = torch.load(path, map_location="cpu", weights_only=True)
    state = contents.get("training")
    if state is None:
        return None
    if not isinstance(state, dict):
        raise InputFileError(f"{path} has a malformed training state", option="resume")
    return dict(state, weights=contents["weights"])


def _finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def train(dataset: PointDataset, model_config: Optional[dict[str, Any]] = None,
          config: Optional[TrainingConfig] = None, **options) -> NeuralField:
    """Train a field on ``dataset``; ``options`` are :class:`Trainer`'s (device, output, log, preview, quiet).

    Examples
    --------
    >>> from lipsdf.sampling import sample
    >>> from lipsdf.geometry.primitives import sphere
    >>> data = sample(sphere(), "signed", n=2000, n_test=400, seed=0)
    >>> field = train(data, {"arch": "sll", "layers": 2, "width": 16},
    ...               TrainingConfig(epochs=1, batch_size=1000, checkpoint_every=0))
    >>> field(np.zeros((1, 3))).shape
    (1,)
    """
    return Trainer(dataset, model_config, config or TrainingConfig(), **options).run()
