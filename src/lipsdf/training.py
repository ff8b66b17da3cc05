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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from lipsdf.dataset import PointDataset
from lipsdf.errors import LipsdfError, ModeError
from lipsdf.evaluate import bounding_box_diagonal, distance_errors
from lipsdf.field import NeuralField, resolve_device
from lipsdf.files import PathLike
from lipsdf.losses import (FIT_NORMS, distance_fit_loss, eikonal_loss, hkr_loss, input_gradient, sal_loss,
                           sald_gradient_loss)
from lipsdf.nn.models import ARCHITECTURES, build_model
from lipsdf.progress import progress_bar

LOSSES_BY_MODE = {"signed": ("hkr",), "unsigned": ("hkr",), "dist": ("fit",), "sal": ("sald", "sal")}
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
            raise LipsdfError(f"final margin must lie in (0, margin = {self.margin}], got {self.final_margin}")
        if self.recipe not in RECIPES:
            raise LipsdfError(f"unknown recipe {self.recipe!r}; choose lipsdf or paper")
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


def default_model_config(dataset: PointDataset, arch: Optional[str] = None, layers: Optional[int] = None,
                         width: Optional[int] = None) -> dict[str, Any]:
    """The model config for a dataset: the paper's SLL 20 x 128 for hKR, a geometric-init MLP for SAL."""
    arch = arch or DEFAULT_ARCH[dataset.mode]
    if arch not in ARCHITECTURES:
        raise LipsdfError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    defaults = {"sll": (20, 128), "ortho": (8, 128), "mlp": (8, 256), "siren": (5, 256)}[arch]
    config: dict[str, Any] = {"arch": arch, "dim": dataset.dim, "layers": layers or defaults[0],
                              "width": width or defaults[1]}
    if arch == "mlp":
        config["activation"] = "softplus"
        if dataset.mode == "sal":
            config["init"] = "geometric"
    return config


class EpochLog:
    """One record per epoch, appended to a ``.jsonl`` or ``.csv`` file as training goes."""

    def __init__(self, path: Optional[PathLike]) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        if self.path is not None:
            if self.path.suffix.lower() not in (".jsonl", ".csv"):
                raise LipsdfError(f"training log {self.path} must end in .jsonl or .csv")
            if not self.path.parent.is_dir():
                raise LipsdfError(f"log directory {self.path.parent} does not exist; create it first")
            self.path.write_text("")

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
class Trainer:
    """Train a network on a dataset and return a :class:`~lipsdf.field.NeuralField`.

    Parameters
    ----------
    dataset : the training data (any mode).
    model_config : see :func:`~lipsdf.nn.models.build_model`; default :func:`default_model_config`.
    config : a :class:`TrainingConfig`.
    device : ``cpu``, ``cuda`` or ``None`` (CUDA when present).
    output : the field file, written at each checkpoint and at the end (optional).
    log : per-epoch log, ``.jsonl`` or ``.csv`` (optional).
    preview : a PNG written at each checkpoint (as ``NAME_eEPOCH.png``) and at the end (optional).
    quiet : no progress bar.
    callback : called with each epoch's log record (e.g. to plot progress live).

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
    preview: Optional[PathLike] = None
    quiet: bool = True
    callback: Optional[Callable[[dict[str, Any]], None]] = None

    def __post_init__(self) -> None:
        mode = self.dataset.mode
        self.loss_name = self.config.loss or LOSSES_BY_MODE[mode][0]
        if self.loss_name not in LOSSES_BY_MODE[mode]:
            allowed = [m for m, losses in LOSSES_BY_MODE.items() if self.loss_name in losses]
            raise ModeError(f"loss {self.loss_name} needs a {' or '.join(allowed) or '?'} dataset, but this one is "
                            f"{mode}; use --loss {'/'.join(LOSSES_BY_MODE[mode])} or sample it with "
                            f"--mode {allowed[0] if allowed else mode}")
        if self.loss_name == "sald" and "surface_normals" not in self.dataset.arrays:
            if self.config.loss == "sald":
                raise ModeError("loss sald needs surface normals, which this dataset does not have; use --loss sal")
            self.loss_name = "sal"
        self.model_config = dict(self.model_config or default_model_config(self.dataset))
        if self.model_config.get("dim", self.dataset.dim) != self.dataset.dim:
            raise LipsdfError(f"the model takes {self.model_config['dim']}D input but the dataset is {self.dataset.dim}D")
        self.model_config["dim"] = self.dataset.dim
        self.device = resolve_device(self.device)
        signed_truth = bool(self.dataset.metadata.get("signed_truth", True))
        self.kind = "unsigned" if mode == "unsigned" or (mode in ("dist", "sal") and not signed_truth) else "signed"
        self.diagonal = bounding_box_diagonal(self.dataset.world("surface_points"))

    # ------------------------------------------------------------------ the loop

    def run(self) -> NeuralField:
        """Train; returns the field (also written to ``output`` when given)."""
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
        log = EpochLog(self.log)  # after everything that can reject the inputs, so no stray log is left
        good_state = None
        started = time.perf_counter()
        step = 0
        with progress_bar(config.epochs, "training", quiet=self.quiet, unit="epoch") as bar:
            for epoch in range(config.epochs):
                order = torch.randperm(n, device=self.device, generator=generator)
                total = torch.zeros((), device=self.device)
                for start in range(0, n, batch):
                    index = order[start: start + batch]
                    margin, lam = schedule.margin(step), schedule.lam(epoch, step)
                    for group in optimiser.param_groups:
                        group["lr"] = config.lr * schedule.lr_factor(step)
                    loss = self._loss(forward, data, index, margin, lam, generator)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    total += loss.detach()
                    step += 1
                mean_loss = float(total) / steps_per_epoch  # one device sync per epoch
                if not math.isfinite(mean_loss) or not _finite(model):
                    self._diverged(epoch, mean_loss, good_state, log)
                good_state = copy.deepcopy(model.state_dict())
                record = {"epoch": epoch + 1, "step": step, "loss": mean_loss, "lam": lam,
                          "margin": schedule.margin(step), "lr": optimiser.param_groups[0]["lr"]}
                last = epoch + 1 == config.epochs
                checkpoint = last or (config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0)
                field = self._field(copy.deepcopy(model), record["margin"])
                record.update(self._test_metrics(field))
                record["seconds"] = round(time.perf_counter() - started, 3)
                log.write(record)
                if self.callback is not None:
                    self.callback(record)
                bar.update(1)
                bar.set_postfix_str(f"loss {mean_loss:.4g}, test MAE {record['mae']:.3g}")
                if checkpoint:
                    field.summary = self._summary(record, log, complete=last)
                    self._write(field, epoch + 1, last)
        return field

    def _compiled(self, model: torch.nn.Module) -> torch.nn.Module:
        """``torch.compile(model)`` for the steps; the field keeps the plain model (same parameters)."""
        takes_second_derivatives = self.loss_name == "sald" or (self.loss_name == "fit" and self.config.eikonal > 0)
        if takes_second_derivatives:
            raise LipsdfError(f"--compile cannot train the {self.loss_name} loss"
                              f"{' with an eikonal term' if self.loss_name == 'fit' else ''}: it differentiates "
                              "the input gradient, which torch.compile does not support; drop --compile"
                              f"{' or use --eikonal 0' if self.loss_name == 'fit' else ''}")
        return torch.compile(model)

    def _loss(self, model, data: _Tensors, index: torch.Tensor, margin: float, lam: float,
              generator: torch.Generator) -> torch.Tensor:
        points, targets = data.points[index], data.targets[index]
        if self.loss_name == "hkr":
            return hkr_loss(model(points), targets, margin, lam)
        if self.loss_name == "fit":
            if self.config.eikonal == 0:
                return distance_fit_loss(model(points), targets, self.config.fit_norm)
            points = points.detach().requires_grad_(True)
            values = model(points)
            return (distance_fit_loss(values, targets, self.config.fit_norm)
                    + self.config.eikonal * eikonal_loss(input_gradient(values, points)))
        loss = sal_loss(model(points), targets)
        if self.loss_name == "sald":
            pick = torch.randint(len(data.surface_points), (max(len(index) // 4, 1),), device=points.device,
                                 generator=generator)
            surface = data.surface_points[pick].detach().requires_grad_(True)
            values = model(surface)
            loss = (loss + values.abs().mean()
                    + self.config.sald_weight * sald_gradient_loss(input_gradient(values, surface),
                                                                   data.surface_normals[pick]))
        return loss

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

    def _write(self, field: NeuralField, epoch: int, last: bool) -> None:
        if self.output is not None:
            field.save(self.output)
        if self.preview is not None:
            from lipsdf.render import plot_field

            preview = Path(self.preview)
            target = preview if last else preview.with_name(f"{preview.stem}_e{epoch:04d}{preview.suffix}")
            plot_field(field, target, title=f"epoch {epoch}")

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
                               "try a smaller --lr or --lam")


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
