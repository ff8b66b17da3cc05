"""Training a field on a :class:`~lipsdf.dataset.PointDataset`.

The loss follows the dataset and the network (:func:`~lipsdf.losses.default_loss`):

==========  ===============================  ==========================================
mode        loss                             what the network learns
==========  ===============================  ==========================================
signed      ``fit-hinge`` where the dataset  the exact signed distance, with hKR's hinge
            has exact distances, else hKR    on its sign (hKR: inside vs outside labels)
unsigned    ``fit-hinge``, else ``hkr``      the exact unsigned distance (hKR: surface
                                             vs elsewhere)
dist        ``fit-hinge`` (1-Lipschitz), or  known distances; the baselines need the
            ``fit`` + eikonal (baselines)    eikonal term, a 1-Lipschitz network does not
sal         ``sal`` or ``sald``              unsigned distances, sign-agnostic (SAL / SALD)
==========  ===============================  ==========================================

Two recipes. ``paper``: the public code's defaults (Adam, lr 5e-4, margin
0.01, lambda warmed up 1 -> 10 -> 100 over the first epochs, constant lr and
margin). ``lipsdf`` (default): a ten times larger learning rate (5e-3) that
decays on a cosine, and, for signed fields, a margin that shrinks
geometrically to ``final_margin`` while lambda ramps up, so that the zero set
ends close to the surface; unsigned fields keep a margin of 0.02. Under
``lipsdf`` every field is shifted by a constant so that its zero level sits
on the shape's own surface samples (:meth:`TrainingConfig.margins`,
:meth:`Trainer._offset`).
``benchmarks/accuracy_levers.py`` measures each change.

All training tensors live on the device; a batch is a slice of a shuffled
index, with no per-batch Python data loading, and the step reads nothing back
to the host (its schedules are tensor arithmetic on a step counter), so on
CUDA it is captured once as a CUDA graph and replayed.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from lipsdf.dataset import PointDataset
from lipsdf.errors import InputFileError, LipsdfError, ModeError
from lipsdf.field import NeuralField, WorldField, resolve_device
from lipsdf.files import PathLike
from lipsdf.losses import FIT_NORMS, LOSSES, Batch, default_loss, losses_for
from lipsdf.metrics import bounding_box_diagonal, distance_errors
from lipsdf.nn.models import ARCHITECTURES, LIPSCHITZ_ARCHITECTURES, build_model
from lipsdf.progress import progress_bar

RECIPES = ("lipsdf", "paper")
MATMUL_PRECISIONS = ("float32", "tf32", "bf16")
BF16_SHARE = 0.75  # of the steps, with bfloat16 products under ``bf16``; the rest polish in float32
DEFAULT_LR, PAPER_LR = 5e-3, 5e-4
DEFAULT_MARGIN, UNSIGNED_MARGIN = 0.01, 0.02  # unit-box units; see TrainingConfig.margins
SURFACE_LEVEL_POINTS = 4096  # surface samples that set a field's zero level (Trainer._offset)
EPOCH_TEST_POINTS = 4096  # test points behind each epoch's logged errors
_GRAPH_WARMUP = 3  # eager steps before a CUDA graph is captured (lets the allocator and kernels settle)
DEFAULT_ARCH = {"signed": "sll", "unsigned": "sll", "dist": "sll", "sal": "mlp"}


class TrainingDiverged(LipsdfError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainingConfig:
    """How to train. Lengths (margins) are in unit-box units, like the dataset's arrays.

    Under ``matmul_precision="bf16"`` the network's products run in bfloat16 (autocast) for the first
    :data:`BF16_SHARE` (3/4) of the steps, then in float32, which polishes what bfloat16's 8-bit mantissa
    cannot resolve: about 1.5x faster per epoch on a CPU with native bfloat16 (AVX512-BF16 or AMX; see
    :func:`bf16_is_fast`), where ``lipsdf fit`` uses it. bfloat16 throughout is faster still but places
    the zero set less precisely. The layers' normalised weights are computed in float32 in every step, and the
    trained weights define a 1-Lipschitz network whatever rounding found them.

    Attributes
    ----------
    epochs : passes over the training points.
    batch_size : points per optimisation step.
    lr : Adam's learning rate (the start of the decay in the ``lipsdf`` recipe); default 5e-3, or the
        paper's 5e-4 with the ``paper`` recipe.
    adam_beta2 : Adam's second-moment decay; default 0.999. A shorter memory (0.99, 0.95) follows the
        gradients' scale as the learning rate and the margin move, and helps short, high-rate runs.
    margin : the hinge's margin (hKR's, or ``fit-hinge``'s cap), unit-box units; default 0.01, or for
        unsigned fields in the ``lipsdf`` recipe 0.02 (see :meth:`margins`).
    final_margin : the margin at the end (``lipsdf`` recipe; default ``margin / 4`` for signed fields,
        ``margin`` for unsigned ones).
    lam : hKR hinge weight, reached after the warm-up ``lam/100``, ``lam/10``, ``lam``.
    recipe : ``lipsdf`` (cosine lr decay; a signed field's margin shrinks) or ``paper`` (both constant).
    loss : ``fit-hinge``, ``hkr``, ``fit``, ``sal`` or ``sald``; default from the dataset's mode, the
        network and whether the dataset has exact distances (:func:`~lipsdf.losses.default_loss`).
    fit_norm : ``l1`` or ``mse`` for the ``fit`` loss.
    eikonal : weight of the eikonal term of the ``fit`` loss (0 turns it off).
    sald_weight : weight of SALD's gradient term.
    seed : seeds the initialisation and the shuffling; same seed, same field (on CPU).
    checkpoint_every : write the field every this many epochs (0: only at the end).
    compile : run the training steps through ``torch.compile``, which fuses the element-wise work
        between matrix products; no faster for SLL 20 x 128 at batch 4096 on a 2-core CPU now that
        the layers fuse bias and residual into their products, and the first epoch pays a few seconds
        of compilation (more with a cold cache). Not for losses that differentiate the input
        gradient (``sald``, ``fit`` with an eikonal term).
    cuda_graph : on CUDA, capture the training step once as a CUDA graph and replay it: one launch per
        step instead of hundreds (first-order losses; ignored on CPU and with ``compile``).
    matmul_precision : training's matrix products: float32; tf32 (CUDA); or bf16, bfloat16 for the first
        3/4 of the steps and float32 to polish (faster where the CPU has native bfloat16). The bound holds
        whatever rounding found the weights: queries evaluate the network in float32.
    """

    epochs: int = 100
    batch_size: int = 4096
    lr: Optional[float] = None
    adam_beta2: float = 0.999
    margin: Optional[float] = None
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
    cuda_graph: bool = True
    matmul_precision: str = "float32"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise LipsdfError("epochs and batch size must be positive")
        if not (self.learning_rate > 0 and (self.margin is None or self.margin > 0) and self.lam > 0):
            raise LipsdfError("lr, margin and lam must be positive")
        if self.final_margin is not None:  # a default margin depends on the field's kind: the larger bounds here
            self.margins("signed" if self.margin is not None else "unsigned")
        if self.recipe not in RECIPES:
            raise LipsdfError(f"unknown recipe {self.recipe!r}; choose lipsdf or paper", option="recipe")
        if self.loss is not None and self.loss not in LOSSES:
            raise LipsdfError(f"unknown loss {self.loss!r}; choose one of: {', '.join(LOSSES)}", option="loss")
        if self.fit_norm not in FIT_NORMS:
            raise LipsdfError(f"unknown fit norm {self.fit_norm!r}; choose l1 or mse")
        if self.matmul_precision not in MATMUL_PRECISIONS:
            raise LipsdfError(f"unknown matmul precision {self.matmul_precision!r}; choose float32, tf32 or bf16",
                              option="matmul_precision")
        if not 0 <= self.adam_beta2 < 1:
            raise LipsdfError(f"Adam's beta2 must lie in [0, 1), got {self.adam_beta2}", option="adam_beta2")
        if self.eikonal < 0 or self.sald_weight < 0 or self.checkpoint_every < 0:
            raise LipsdfError("eikonal weight, SALD weight and checkpoint interval must be >= 0")

    @property
    def learning_rate(self) -> float:
        """``lr``, or the recipe's default."""
        if self.lr is not None:
            return self.lr
        return PAPER_LR if self.recipe == "paper" else DEFAULT_LR

    def margins(self, kind: str = "signed") -> tuple[float, float]:
        """The hinge margin at the start and at the end of training, for a ``signed`` or ``unsigned`` field.

        Signed fields (``lipsdf`` recipe) start at 0.01 and shrink to a quarter of it, so that the zero set
        ends close to the surface. Unsigned fields keep a margin of 0.02: their surface is drawn at a small
        level above zero (one grid cell), and the hinge, which asks ``f >= min(margin, d)``, is what keeps
        the field from sagging below that level between curves or sheets that are close together (where
        it would draw a web between them); measured in ``benchmarks/accuracy_levers.py``. The ``paper``
        recipe keeps 0.01 throughout.

        Examples
        --------
        >>> TrainingConfig().margins("signed"), TrainingConfig().margins("unsigned")
        ((0.01, 0.0025), (0.02, 0.02))
        """
        unsigned = kind == "unsigned" and self.recipe != "paper"
        start = self.margin if self.margin is not None else (UNSIGNED_MARGIN if unsigned else DEFAULT_MARGIN)
        if self.final_margin is None:
            end = start if self.recipe == "paper" or unsigned else start / 4
        elif self.recipe == "paper":
            end = start
        else:
            end = self.final_margin
        if not 0 < end <= start:
            raise LipsdfError(f"final margin must lie in (0, margin = {start}], got {end}", option="final_margin")
        return start, end


@dataclass
class Schedule:
    """Margin, lambda and learning-rate factor as functions of the step, in tensor arithmetic.

    They take the step as a tensor on the training device, so the training step computes them there and
    never reads a value back to the host (which also lets a CUDA graph replay the step); call them with
    ``torch.tensor(step)`` to read one value.
    """

    config: TrainingConfig
    total_steps: int
    steps_per_epoch: int = 1
    kind: str = "signed"  # the field's: it sets the default margins

    def warmup_epochs(self) -> int:
        return max(1, round(0.05 * self.config.epochs))

    def progress(self, step: torch.Tensor) -> torch.Tensor:
        """0 -> 1 over the first 80% of the steps, then 1: the ``lipsdf`` recipe's margin and lambda ramps."""
        return torch.clamp(step / max(0.8 * self.total_steps, 1), max=1.0)

    def lam(self, step: torch.Tensor) -> torch.Tensor:
        if self.config.recipe == "paper":
            stage = torch.clamp(torch.div(step, self.steps_per_epoch * self.warmup_epochs(), rounding_mode="floor"),
                                max=2)
            return self.config.lam * 10.0 ** (stage - 2)
        return self.config.lam * 0.01 ** (1.0 - self.progress(step))

    def margin(self, step: torch.Tensor) -> torch.Tensor:
        start, end = self.config.margins(self.kind)
        return start * (end / start) ** self.progress(step)

    def lr_factor(self, step: torch.Tensor) -> torch.Tensor:
        if self.config.recipe == "paper":
            return torch.ones_like(step)
        floor = 0.02
        done = torch.clamp(step / max(self.total_steps, 1), max=1.0)
        return floor + (1 - floor) * 0.5 * (1 + torch.cos(math.pi * done))

    def values(self, step: int) -> dict[str, float]:
        """The margin, lambda and learning-rate factor at ``step``, as numbers (for logs)."""
        at = torch.tensor(float(step), dtype=torch.float64)
        return {"margin": float(self.margin(at)), "lam": float(self.lam(at)), "lr_factor": float(self.lr_factor(at))}


def field_kind(mode: str, signed_truth: bool = True) -> str:
    """The kind of field a dataset of ``mode`` trains: ``signed``, or ``unsigned`` for unsigned datasets and
    for ``dist``/``sal`` data of a shape without an inside (``signed_truth`` false).

    Examples
    --------
    >>> field_kind("signed"), field_kind("unsigned"), field_kind("dist", signed_truth=False)
    ('signed', 'unsigned', 'unsigned')
    """
    return "unsigned" if mode == "unsigned" or (mode in ("dist", "sal") and not signed_truth) else "signed"


MODEL_SIZES = {"sll": (20, 128), "ortho": (8, 128), "mlp": (8, 256), "siren": (5, 256)}  # layers, width


def model_config(mode: str, dim: int, arch: Optional[str] = None, layers: Optional[int] = None,
                 width: Optional[int] = None, activation: Optional[str] = None,
                 beta: Optional[float] = None) -> dict[str, Any]:
    """The model config for a dataset of ``mode`` in ``dim`` dimensions: the paper's SLL 20 x 128 for hKR,
    a geometric-init MLP for SAL; ``arch``, ``layers``, ``width``, ``activation`` and ``beta`` override.

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
    if activation is not None:
        config["activation"] = activation
    if beta is not None:
        config["beta"] = beta
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

    @classmethod
    def of(cls, dataset: PointDataset, targets: str, device: torch.device) -> "_Tensors":
        """``targets``: the array the loss fits, ``labels`` or ``distances``."""
        def tensor(array):
            return torch.as_tensor(np.asarray(array, dtype=np.float32), device=device)

        targets = dataset.arrays[targets]
        normals = dataset.arrays.get("surface_normals")
        return cls(tensor(dataset.points), tensor(targets), tensor(dataset.surface_points),
                   None if normals is None else tensor(normals))


@dataclass
class _Run:
    """The state of one training run. The step's inputs (the epoch's shuffled order, the step count, the
    learning rate) are device tensors updated in place, so a captured CUDA graph can replay the step."""

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
    order: torch.Tensor  # (steps_per_epoch * batch,) point indices of this epoch, in batches
    step_count: torch.Tensor  # the step number on the device (float64), read by the schedules
    lr: torch.Tensor  # the optimiser's learning rate, set from the schedule inside the step
    loss_sum: torch.Tensor  # the epoch's summed loss, read once at its end
    step: int = 0  # the same step number on the host, for logs and checkpoints
    first_epoch: int = 0
    checkpointed: int = 0  # the epoch of the last checkpoint written
    good_state: Optional[dict[str, torch.Tensor]] = None
    graph: Any = None  # the captured step (CUDA graphs), once captured
    graph_bf16: bool = False  # whether the captured step runs its products in bfloat16
    side_stream: Any = None  # the CUDA stream of the warm-up steps
    warm_steps: int = 0


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
        self.model_config = dict(self.model_config or model_config(mode, self.dataset.dim))
        lipschitz = self.model_config.get("arch", "sll") in LIPSCHITZ_ARCHITECTURES
        distances = "distances" in self.dataset.arrays
        self.loss_name = self.config.loss or default_loss(mode, lipschitz, distances)
        loss = LOSSES[self.loss_name]
        if mode not in loss.modes:
            raise ModeError(f"the {self.loss_name} loss trains on {' or '.join(loss.modes)} "
                            f"datasets, but this one is {mode}; train it with "
                            f"{' or '.join(losses_for(mode, lipschitz, distances))}, or sample the shape in "
                            f"{loss.modes[0]} mode", option="loss")
        if loss.targets not in self.dataset.arrays:
            raise ModeError(f"the {self.loss_name} loss needs the exact distances of the training points, which "
                            f"this dataset does not have (a point cloud has none); train it with "
                            f"{' or '.join(losses_for(mode, lipschitz, distances))}", option="loss")
        if self.loss_name == "sald" and "surface_normals" not in self.dataset.arrays:
            if self.config.loss == "sald":
                raise ModeError("the sald loss needs surface normals, which this dataset does not have; "
                                "train it with sal", option="loss")
            self.loss_name = "sal"
        self.loss = LOSSES[self.loss_name]
        if self.model_config.get("dim", self.dataset.dim) != self.dataset.dim:
            raise LipsdfError(f"the model takes {self.model_config['dim']}D input but the dataset is "
                              f"{self.dataset.dim}D")
        self.model_config["dim"] = self.dataset.dim
        self.device = resolve_device(self.device)
        self.kind = field_kind(mode, bool(self.dataset.metadata.get("signed_truth", True)))
        self.config.margins(self.kind)  # a final margin above this kind's default margin fails now
        self.diagonal = bounding_box_diagonal(self.dataset.world("surface_points"))
        points, truth = self.dataset.world("test_points"), self.dataset.world("test_distances")
        if len(points) > EPOCH_TEST_POINTS:
            pick = np.random.default_rng(self.config.seed).choice(len(points), EPOCH_TEST_POINTS, replace=False)
            points, truth = points[pick], truth[pick]
        self._epoch_test = points, truth  # the fixed subset behind each epoch's logged test errors

    # ------------------------------------------------------------------ the loop

    def run(self) -> NeuralField:
        """Train; returns the field (also written to ``output`` when given)."""
        run = self._start()
        with progress_bar(self.config.epochs, "training", quiet=self.quiet, unit="epoch") as bar, \
                using_matmul_precision(self.config.matmul_precision if self.device.type == "cuda" else "float32"):
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
        data = _Tensors.of(self.dataset, self.loss.targets, self.device)
        generator = torch.Generator(device=self.device).manual_seed(config.seed)
        lr = torch.tensor(config.learning_rate, device=self.device)
        # Fused Adam: one kernel per step for all parameters, and it takes the learning rate as a device
        # tensor, which the schedule sets inside the (capturable) step.
        optimiser = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, config.adam_beta2), fused=True,
                                     capturable=self.device.type == "cuda")
        forward = self._compiled(model) if config.compile else model
        n = len(data.points)
        batch = min(config.batch_size, n)
        steps_per_epoch = math.ceil(n / batch)
        schedule = Schedule(config, steps_per_epoch * config.epochs, steps_per_epoch, self.kind)
        tensors = dict(order=torch.zeros(steps_per_epoch * batch, dtype=torch.long, device=self.device),
                       step_count=torch.zeros((), dtype=torch.float64, device=self.device), lr=lr,
                       loss_sum=torch.zeros((), device=self.device))
        if self.resume is None:
            log = EpochLog(self.log)  # after everything that can reject the inputs, so no stray log is left
            return _Run(model, forward, optimiser, data, generator, schedule, log, batch, steps_per_epoch,
                        time.perf_counter(), **tensors)
        state = self.resume
        if json.loads(state["dataset"])["digest"] != self.dataset.digest():
            raise LipsdfError("this dataset is not the one the checkpoint was trained on; resume with that one",
                              option="resume")
        model.load_state_dict(state["weights"])
        optimiser.load_state_dict(state["optimizer"])
        for group in optimiser.param_groups:  # keep the one learning-rate tensor the step writes
            group["lr"] = lr
        generator.set_state(state["generator"].to(generator.get_state().device))
        torch.set_rng_state(state["torch_rng"])
        log = EpochLog(self.log, json.loads(state["log"]))
        tensors["step_count"].fill_(int(state["step"]))
        return _Run(model, forward, optimiser, data, generator, schedule, log, batch, steps_per_epoch,
                    time.perf_counter() - float(state["seconds"]), **tensors, step=int(state["step"]),
                    first_epoch=int(state["epoch"]), checkpointed=int(state["epoch"]),
                    good_state=copy.deepcopy(model.state_dict()))

    def _train_epoch(self, run: _Run, epoch: int) -> float:
        """One pass over the shuffled points; returns the mean loss (the epoch's one device sync).

        Every batch is full: the last one of an epoch wraps around to the first points of the shuffle."""
        n = len(run.data.points)
        order = torch.randperm(n, device=self.device, generator=run.generator)
        run.order.copy_(order.repeat(math.ceil(len(run.order) / n))[:len(run.order)])
        run.loss_sum.zero_()
        for _ in range(run.steps_per_epoch):
            if self._use_graph:
                self._graph_step(run)
            else:
                self._step(run)
            run.step += 1
        return float(run.loss_sum) / run.steps_per_epoch

    @property
    def _use_graph(self) -> bool:
        """Replay the step as a CUDA graph: on CUDA, when asked, for the first-order losses drawing no random
        numbers in the step (SALD draws surface points; compiled steps have their own graphs)."""
        return (self.device.type == "cuda" and self.config.cuda_graph and not self.config.compile
                and self.loss_name != "sald" and not self.loss.second_order(self.config.eikonal))

    def _step(self, run: _Run) -> None:
        """One optimisation step, all on the device: nothing in it reads a value back to the host."""
        config, data = self.config, run.data
        row = torch.remainder(run.step_count, run.steps_per_epoch).long().reshape(1)
        index = run.order.view(run.steps_per_epoch, run.batch).index_select(0, row)[0]
        batch = Batch(data.points.index_select(0, index), data.targets.index_select(0, index),
                      run.schedule.margin(run.step_count), run.schedule.lam(run.step_count), config.fit_norm,
                      config.eikonal, config.sald_weight)
        if self.loss_name == "sald":
            pick = torch.randint(len(data.surface_points), (max(run.batch // 4, 1),), device=self.device,
                                 generator=run.generator)
            batch.surface_points, batch.surface_normals = data.surface_points[pick], data.surface_normals[pick]
        run.lr.copy_(config.learning_rate * run.schedule.lr_factor(run.step_count))
        run.optimiser.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._bf16(run)):
            loss = self.loss.objective(run.forward, batch)
        loss.backward()
        run.optimiser.step()
        run.loss_sum.add_(loss.detach())
        run.step_count.add_(1)

    def _bf16(self, run: _Run) -> bool:
        """Whether this step's products run in bfloat16: the first :data:`BF16_SHARE` of the steps under
        ``bf16`` precision."""
        return self.config.matmul_precision == "bf16" and run.step < BF16_SHARE * run.schedule.total_steps

    def _graph_step(self, run: _Run) -> None:
        """The step on CUDA: a few eager warm-up steps on a side stream, then the step captured once as a
        CUDA graph and replayed (one launch per step instead of hundreds); captured again when ``bf16``
        precision switches to float32."""
        if run.graph is not None and run.graph_bf16 != self._bf16(run):
            run.graph, run.warm_steps = None, 0
        if run.graph is None:
            if run.warm_steps < _GRAPH_WARMUP:
                if run.warm_steps == 0:
                    run.side_stream = torch.cuda.Stream(self.device)
                    run.side_stream.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(run.side_stream):
                    self._step(run)
                run.warm_steps += 1
                return
            torch.cuda.current_stream(self.device).wait_stream(run.side_stream)
            graph = torch.cuda.CUDAGraph()
            run.graph_bf16 = self._bf16(run)
            with torch.cuda.graph(graph):
                self._step(run)
            run.graph = graph
        run.graph.replay()

    def _end_epoch(self, run: _Run, epoch: int, mean_loss: float) -> tuple[NeuralField, dict[str, Any]]:
        """Check the loss, log the epoch with its test errors, and write a checkpoint when one is due."""
        if not math.isfinite(mean_loss) or not _finite(run.model):
            self._diverged(epoch, mean_loss, run.good_state, run.log)
        run.good_state = {key: value.detach().clone() for key, value in run.model.state_dict().items()}
        last_step = run.schedule.values(run.step - 1)
        record = {"epoch": epoch + 1, "step": run.step, "loss": mean_loss, "lam": last_step["lam"],
                  "margin": run.schedule.values(run.step)["margin"], "lr": self.config.learning_rate * last_step["lr_factor"]}
        record.update(self._test_metrics(run.model, record["margin"]))
        record["seconds"] = round(time.perf_counter() - run.started, 3)
        run.log.write(record)
        if self.callback is not None:
            self.callback(record)
        last = epoch + 1 == self.config.epochs
        field = None
        if last or (self.config.checkpoint_every and (epoch + 1) % self.config.checkpoint_every == 0):
            field = self._field(copy.deepcopy(run.model), record["margin"])
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
        """A field around ``model`` (which it takes over), with the offset of :meth:`_offset`."""
        return NeuralField(model, self.dataset.normalization, self.model_config, kind=self.kind,
                           offset=self._offset(model, margin), metadata=self.dataset.metadata, device=self.device)

    def _offset(self, model: torch.nn.Module, margin: float) -> float:
        """What puts the field's zero level on the shape (unit-box units, added to the network).

        Signed fields, ``lipsdf`` recipe: minus the network's median on the shape's surface samples (0 with
        the ``paper`` recipe). The zero set should be where the shape is; a constant shift that puts half
        the surface samples on each side removes the field's bias there, which no training step targets
        directly (the loss weighs every point alike).

        Unsigned fields: the margin for hKR; for losses on distances, minus that median capped at a
        quarter of the margin. A 1-Lipschitz network cannot make the sharp crease of an unsigned distance
        on its zero set (a cone around a curve, a V across a sheet): it rounds the bottom off, a little
        above zero. The field ``|g - level|`` puts that bottom back at zero, so the thin level sets drawn
        just above it are tubes around the whole shape rather than broken pieces of one. The cap keeps the
        field at least 3/4 of the margin (0.015 by default, about one cell of the default 128^3 contour
        grid) above zero between nearby parts of the shape, where the hinge holds it up: a larger shift,
        from an under-trained field, would draw webs there again.

        A constant shift keeps the field 1-Lipschitz. Both are measured in ``benchmarks/accuracy_levers.py``.
        """
        if self.kind != "unsigned":
            return 0.0 if self.config.recipe == "paper" else -self._surface_median(model)
        return margin if self.loss_name == "hkr" else -min(self._surface_median(model), margin / 4)

    def _surface_median(self, model: torch.nn.Module) -> float:
        """The median of the network on (the first 4096 of) the shape's own surface samples."""
        surface = self.dataset.arrays["surface_points"][:SURFACE_LEVEL_POINTS]
        with torch.no_grad():
            values = model(torch.as_tensor(surface, dtype=torch.float32, device=self.device))
        return float(values.median())

    def _test_metrics(self, model: torch.nn.Module, margin: float) -> dict[str, float]:
        """Errors of the field the model stands for now, on a fixed random subset of the test points (all
        of them at the last epoch is ``lipsdf eval``'s job). The training model is evaluated as it is (no
        copy, no frozen weights), so logging every epoch stays cheap next to fast GPU epochs."""
        points, truth = self._epoch_test
        normalization = self.dataset.normalization
        if not torch.is_tensor(points):  # once: the points in the unit box, on the device
            points = torch.as_tensor(normalization.to_unit(points), dtype=torch.float32, device=self.device)
            self._epoch_test = points, truth
        world = WorldField(model, normalization, self.kind, self._offset(model, margin))
        with torch.no_grad():
            values = world.unit(points).double().cpu().numpy() * normalization.scale
        signed = self.kind == "signed" and bool(self.dataset.metadata.get("signed_truth", True))
        return distance_errors(values, truth, signed, self.diagonal)

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


@contextlib.contextmanager
def using_matmul_precision(precision: str) -> Iterator[None]:
    """Within the block, CUDA matrix products use ``precision`` (``float32`` or ``tf32``); restored after."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def bf16_is_fast(device: Union[str, torch.device, None] = "cpu") -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively, so that ``matmul_precision="bf16"`` pays:
    a CPU with AVX512-BF16 or AMX (elsewhere bfloat16 is emulated, and slower than float32), or a CUDA GPU
    that supports bfloat16.

    Examples
    --------
    >>> isinstance(bf16_is_fast("cpu"), bool)
    True
    """
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so looked up with care
    try:
        return any(bool(getattr(torch.cpu, check)()) for check in checks if hasattr(torch.cpu, check))
    except Exception:  # noqa: BLE001 - an unknown CPU or torch build: assume float32 is the fast path
        return False


def _finite(model: torch.nn.Module) -> bool:
    """No NaN or infinity in any parameter: one reduction and one host sync for the whole model."""
    return bool(torch.isfinite(torch.cat([p.detach().flatten() for p in model.parameters()])).all())


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
