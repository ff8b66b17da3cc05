"""How to train: :class:`TrainingConfig`, the schedules it implies, and the model a dataset trains by default.

Two recipes. ``paper``: the public code's defaults (Adam, lr 5e-4, margin 0.01, lambda warmed up
1 -> 10 -> 100 over the first epochs, constant lr and margin). ``lipsdf`` (default): a ten times larger
learning rate (5e-3) that decays on a cosine, and, for signed fields, a margin that shrinks geometrically
to ``final_margin`` while lambda ramps up, so that the zero set ends close to the surface; unsigned fields
keep a margin of 0.02. ``benchmarks/accuracy_levers.py`` measures each change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from lipsdf.dataset import PointDataset
from lipsdf.errors import LipsdfError, ModeError
from lipsdf.losses import FIT_NORMS, LOSSES, Loss, default_loss, losses_for
from lipsdf.nn.models import ARCHITECTURES, LIPSCHITZ_ARCHITECTURES

RECIPES = ("lipsdf", "paper")
MATMUL_PRECISIONS = ("float32", "tf32", "bf16")
OPTIMISERS = ("adam", "muon")
BF16_SHARE = 0.75  # default share of the steps with bfloat16 products under ``bf16``; the rest polish in float32
DEFAULT_LR, PAPER_LR = 5e-3, 5e-4
DEFAULT_MARGIN, UNSIGNED_MARGIN = 0.01, 0.02  # unit-box units; see TrainingConfig.margins
DEFAULT_ARCH = {"signed": "sll", "unsigned": "sll", "dist": "sll", "sal": "mlp"}


@dataclass(frozen=True)
class TrainingConfig:
    """How to train. Lengths (margins) are in unit-box units, like the dataset's arrays.

    Under ``matmul_precision="bf16"`` the network's products run in bfloat16 (autocast) for the first
    ``bf16_share`` (3/4) of the steps, then in float32, which polishes what bfloat16's 8-bit mantissa
    cannot resolve: faster per step on a CPU with native bfloat16 (AVX512-BF16 or AMX; see
    :func:`~lipsdf.training.step.bf16_is_fast`), where ``lipsdf fit`` uses it (``benchmarks/results/step_cost.md``). bfloat16 throughout is faster still but places
    the zero set less precisely. The layers' normalised weights are computed in float32 in every step, and the
    trained weights define a 1-Lipschitz network whatever rounding found them.

    Attributes
    ----------
    epochs : passes over the training points.
    batch_size : points per optimisation step.
    lr : Adam's learning rate (the start of the decay in the ``lipsdf`` recipe); default 5e-3, or the
        paper's 5e-4 with the ``paper`` recipe.
    optimiser : ``adam``, or ``muon``: the network's weight matrices step by Muon (momentum orthogonalised
        by Newton-Schulz iterations) at ``muon_lr``, the rest (biases, SLL's scalings, the output) by Adam
        at ``lr``; both follow the same schedule.
    muon_lr : Muon's learning rate (the start of its decay), on the scale of Adam's.
    adam_beta2 : Adam's second-moment decay. A shorter memory (0.99, 0.95) follows the
        gradients' scale as the learning rate and the margin move, and helps short, high-rate runs.
    bf16_share : the share of the steps that run their products in bfloat16 under ``bf16`` precision.
    error_focus : each epoch goes through every point once and then this many times as many again, drawn
        in proportion to their error ``|f - d|`` when last trained on; 0 turns it off. For the losses that
        fit distances (``fit-hinge``, ``fit``, ``sal``, ``sald``); hKR's labels have no error to draw by,
        and ignore it.
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
        between matrix products; the first epoch pays for the compilation. Not for losses that
        differentiate the input gradient (``sald``, ``fit`` with an eikonal term).
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
    optimiser: str = "adam"
    muon_lr: float = 0.02
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
    bf16_share: float = BF16_SHARE
    error_focus: float = 0.0

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
        if self.optimiser not in OPTIMISERS:
            raise LipsdfError(f"unknown optimiser {self.optimiser!r}; choose adam or muon", option="optimiser")
        if not self.muon_lr > 0:
            raise LipsdfError(f"Muon's learning rate must be positive, got {self.muon_lr}", option="muon_lr")
        if not 0 <= self.bf16_share <= 1:
            raise LipsdfError(f"the bfloat16 share must lie in [0, 1], got {self.bf16_share}", option="bf16_share")
        if not 0 <= self.error_focus < 1:
            raise LipsdfError(f"the error focus must lie in [0, 1), got {self.error_focus}", option="error_focus")
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




def chosen_loss(dataset: PointDataset, model: dict[str, Any], asked: Optional[str]) -> str:
    """The loss a run trains: ``asked``, or the default for the dataset's mode, the network and whether the
    dataset has exact distances (SALD falls back to SAL without surface normals); a loss the dataset cannot
    train is a clear error."""
    mode = dataset.mode
    lipschitz = model.get("arch", "sll") in LIPSCHITZ_ARCHITECTURES
    distances = "distances" in dataset.arrays
    name = asked or default_loss(mode, lipschitz, distances)
    loss = LOSSES[name]
    others = " or ".join(losses_for(mode, lipschitz, distances))
    if mode not in loss.modes:
        raise ModeError(f"the {name} loss trains on {' or '.join(loss.modes)} datasets, but this one is {mode}; "
                        f"train it with {others}, or sample the shape in {loss.modes[0]} mode", option="loss")
    if loss.targets not in dataset.arrays:
        raise ModeError(f"the {name} loss needs the exact distances of the training points, which this dataset "
                        f"does not have (an unsigned point cloud has none); train it with {others}", option="loss")
    if name == "sald" and "surface_normals" not in dataset.arrays:
        if asked == "sald":
            raise ModeError("the sald loss needs surface normals, which this dataset does not have; train it with "
                            "sal", option="loss")
        return "sal"
    return name


def compiled(model: torch.nn.Module, loss: Loss, name: str, config: TrainingConfig) -> torch.nn.Module:
    """``torch.compile(model)`` for the steps; the field keeps the plain model (same parameters)."""
    if loss.second_order(config.eikonal):
        eikonal = name == "fit"
        raise LipsdfError(f"torch.compile cannot train the {name} loss{' with an eikonal term' if eikonal else ''}: "
                          "it differentiates the input gradient, which torch.compile does not support; train "
                          f"without compiling{' or with an eikonal weight of 0' if eikonal else ''}",
                          option="compile")
    return torch.compile(model)
