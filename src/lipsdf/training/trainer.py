"""The training loop: :class:`Trainer`, its :class:`Callback` hooks, and :func:`train`.

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

Under the ``lipsdf`` recipe every field is shifted by a constant so that its zero level sits on the
shape's own surface samples (:func:`~lipsdf.training.offset.zero_level_offset`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, replace
from typing import Any, Optional, Sequence

import numpy as np
import torch

from lipsdf.dataset import PointDataset
from lipsdf.errors import LipsdfError
from lipsdf.field import NeuralField, WorldField, resolve_device
from lipsdf.files import PathLike
from lipsdf.losses import LOSSES
from lipsdf.metrics import bounding_box_diagonal, distance_errors
from lipsdf.nn.models import build_model
from lipsdf.progress import progress_bar
from lipsdf.training.checkpoints import checkpoint_state, restore
from lipsdf.training.config import TrainingConfig, chosen_loss, compiled, field_kind, model_config as default_model
from lipsdf.training.log import EpochLog
from lipsdf.training.offset import OffsetContext, OffsetRule, zero_level_offset
from lipsdf.training.step import (DeviceData, StepCost, TrainingState, eager_step, epoch_shape, finite, graph_step,
                                  new_state, time_steps, uses_bf16, using_matmul_precision)

EPOCH_TEST_POINTS = 4096  # test points behind each epoch's logged errors


class TrainingDiverged(LipsdfError):
    """The loss became NaN or infinite."""


class Callback:
    """Hooks into a :class:`Trainer`'s run; subclass and override the ones you need (all do nothing here).

    Examples
    --------
    >>> class EpochTimes(Callback):
    ...     def __init__(self):
    ...         self.seconds = []
    ...     def on_epoch_end(self, trainer, state, record):
    ...         self.seconds.append(record["seconds"])
    """

    def on_train_start(self, trainer: "Trainer", state: TrainingState) -> None:
        """Before the first step (of a resumed run: before its first new step)."""

    def on_step_end(self, trainer: "Trainer", state: TrainingState) -> None:
        """After each optimisation step (``state.step`` counts it already)."""

    def on_epoch_end(self, trainer: "Trainer", state: TrainingState, record: dict[str, Any]) -> None:
        """After each epoch, with its log record; setting ``state.stopped`` to a reason makes this epoch
        the run's last."""

    def on_train_end(self, trainer: "Trainer", state: TrainingState) -> None:
        """After the last step, before the final field is made from ``state.model``."""

    def on_checkpoint(self, trainer: "Trainer", field: NeuralField, epoch: int, last: bool) -> None:
        """With the field of each checkpoint and of the end (``last``)."""


class EpochRecords(Callback):
    """Keeps each epoch's log record in ``records`` and the ``time.perf_counter()`` at its end in ``ended``
    (for plots of error against time, and for timing epochs)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.ended: list[float] = []

    def on_epoch_end(self, trainer: "Trainer", state: TrainingState, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.ended.append(time.perf_counter())


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
    callbacks : :class:`Callback` instances, called in order.
    resume : a checkpoint's training state (:func:`read_checkpoint`): the run continues from it, with its
        optimiser state, schedules and random state, and ends with the same weights as an uninterrupted run.
    offset : the rule for the constant added to the network (default :func:`zero_level_offset`).

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

    def __init__(self, dataset: PointDataset, model_config: Optional[dict[str, Any]] = None,
                 config: Optional[TrainingConfig] = None, *, device: Optional[str] = None,
                 output: Optional[PathLike] = None, log: Optional[PathLike] = None, quiet: bool = True,
                 callbacks: Sequence[Callback] = (), resume: Optional[dict[str, Any]] = None,
                 offset: OffsetRule = zero_level_offset) -> None:
        self.dataset, self.config = dataset, config or TrainingConfig()
        self.output, self.log, self.quiet, self.resume, self.offset = output, log, quiet, resume, offset
        self.callbacks = list(callbacks)
        self.model_config = dict(model_config or default_model(dataset.mode, dataset.dim))
        self.loss_name = chosen_loss(dataset, self.model_config, self.config.loss)
        self.loss = LOSSES[self.loss_name]
        if self.model_config.get("dim", dataset.dim) != dataset.dim:
            raise LipsdfError(f"the model takes {self.model_config['dim']}D input but the dataset is {dataset.dim}D")
        self.model_config["dim"] = dataset.dim
        self.device: torch.device = resolve_device(device)
        self.kind = field_kind(dataset.mode, bool(dataset.metadata.get("signed_truth", True)))
        self.config.margins(self.kind)  # a final margin above this kind's default margin fails now
        self.diagonal = bounding_box_diagonal(dataset.world("surface_points"))
        points, truth = dataset.world("test_points"), dataset.world("test_distances")
        if len(points) > EPOCH_TEST_POINTS:
            pick = np.random.default_rng(self.config.seed).choice(len(points), EPOCH_TEST_POINTS, replace=False)
            points, truth = points[pick], truth[pick]
        unit = torch.as_tensor(dataset.normalization.to_unit(points), dtype=torch.float32, device=self.device)
        self._epoch_test = unit, truth  # the fixed subset behind each epoch's logged test errors

    def run(self) -> NeuralField:
        """Train; returns the field (also written to ``output`` when given)."""
        state = self.start()
        for callback in self.callbacks:
            callback.on_train_start(self, state)
        precision = self.config.matmul_precision if self.device.type == "cuda" else "float32"
        with progress_bar(self.config.epochs, "training", quiet=self.quiet, unit="epoch") as bar, \
                using_matmul_precision(precision):
            bar.update(state.first_epoch)
            try:
                for epoch in range(state.first_epoch, self.config.epochs):
                    state.shuffle(self.device)
                    for _ in range(state.steps_per_epoch):
                        self.step(state)
                        for callback in self.callbacks:
                            callback.on_step_end(self, state)
                    field, record = self.end_epoch(state, epoch, float(state.loss_sum) / state.steps_per_epoch)
                    bar.update(1)
                    bar.set_postfix_str(f"loss {record['loss']:.4g}, test MAE {record['mae']:.3g}")
                    if state.stopped:
                        break
            except KeyboardInterrupt as stop:
                if not getattr(stop, "kept", "") and self.output is not None and state.checkpointed:
                    stop.kept = f"kept the checkpoint of epoch {state.checkpointed} in {self.output}"
                raise
        return field

    def start(self, log: bool = True) -> TrainingState:
        """A run's state at its first step: seeded model, optimiser, schedule and the data on the device,
        continued from ``resume`` when given. ``log=False``: a throwaway run that writes no log."""
        torch.manual_seed(self.config.seed)
        model = build_model(self.model_config).to(self.device)
        model.train()
        forward = compiled(model, self.loss, self.loss_name, self.config) if self.config.compile else model
        data = DeviceData.of(self.dataset, self.loss.targets, self.device)
        # the log is opened after everything that can reject the inputs, so no stray log is left
        state = new_state(model, forward, data, self.config, self.kind, EpochLog(None), self.device, self.loss)
        if self.resume is not None and log:
            return restore(state, self.resume, self.dataset, self.log)
        state.log = EpochLog(self.log if log else None)
        return state

    def step(self, state: TrainingState) -> None:
        """One optimisation step (replayed as a CUDA graph where :attr:`uses_graph`)."""
        if self.uses_graph:
            graph_step(state, lambda: eager_step(state, self.loss, self.loss_name, self.config, self.device),
                       uses_bf16(self.config, state), self.device)
        else:
            eager_step(state, self.loss, self.loss_name, self.config, self.device)
        state.step += 1

    @property
    def steps_per_epoch(self) -> int:
        """The optimisation steps of one epoch (:func:`~lipsdf.training.step.epoch_shape`)."""
        return epoch_shape(len(self.dataset.points), self.config, self.loss)[1]

    @property
    def uses_graph(self) -> bool:
        """Replay the step as a CUDA graph: on CUDA, when asked, for the first-order losses drawing no random
        numbers in the step (SALD draws surface points; compiled steps have their own graphs)."""
        return (self.device.type == "cuda" and self.config.cuda_graph and not self.config.compile
                and self.loss_name != "sald" and not self.loss.second_order(self.config.eikonal))

    def step_cost(self, seconds: float = 1.0) -> StepCost:
        """What a step and an epoch's end cost on this machine, timed on throwaway runs of this trainer's own
        data and network (about ``seconds`` in all; the trainer's own run is untouched). Under ``bf16``
        precision both kinds of step are timed."""
        precisions = ("bf16", "float32") if self.config.matmul_precision == "bf16" else (self.config.matmul_precision,)
        step = {}
        for precision in precisions:
            probe = Trainer(self.dataset, self.model_config, replace(self.config, matmul_precision=precision,
                            bf16_share=1.0), device=str(self.device), offset=self.offset)
            state = probe.start(log=False)
            state.shuffle(self.device)
            step[precision] = time_steps(lambda: probe.step(state), self.device, seconds / len(precisions))
        started = time.perf_counter()
        self.test_errors(state.model, state.schedule.values(0)["margin"])
        return StepCost(step, time.perf_counter() - started, self.config.bf16_share)

    def make_field(self, model: torch.nn.Module, margin: float) -> NeuralField:
        """A field around ``model`` (which it takes over), with the offset of :attr:`offset`."""
        return NeuralField(model, self.dataset.normalization, self.model_config, kind=self.kind,
                           offset=self._offset(model, margin), metadata=self.dataset.metadata, device=self.device)

    def _offset(self, model: torch.nn.Module, margin: float) -> float:
        context = OffsetContext(self.kind, self.loss_name, self.config.recipe, margin,
                                self.dataset.arrays["surface_points"], self.device)
        return self.offset(model, context)

    def test_errors(self, model: torch.nn.Module, margin: float) -> dict[str, float]:
        """Errors of the field ``model`` stands for now, on a fixed subset of the test points (all of them is
        ``lipsdf eval``'s job); the model is evaluated as it is, so logging every epoch stays cheap."""
        points, truth = self._epoch_test
        normalization = self.dataset.normalization
        world = WorldField(model, normalization, self.kind, self._offset(model, margin))
        with torch.no_grad():
            values = world.unit(points).double().cpu().numpy() * normalization.scale
        signed = self.kind == "signed" and bool(self.dataset.metadata.get("signed_truth", True))
        return distance_errors(values, truth, signed, self.diagonal)

    def end_epoch(self, state: TrainingState, epoch: int, mean_loss: float) -> tuple[Optional[NeuralField], dict]:
        """Check the loss, log the epoch with its test errors, and write a checkpoint when one is due (the
        field of the last epoch always): the end of each epoch of :meth:`run`, and of a stacked run's."""
        if not math.isfinite(mean_loss) or not finite(state.model):
            self._diverged(epoch, mean_loss, state)
        state.good_state = {key: value.detach().clone() for key, value in state.model.state_dict().items()}
        last_step = state.schedule.values(state.step - 1)
        record = {"epoch": epoch + 1, "step": state.step, "loss": mean_loss, "lam": last_step["lam"],
                  "margin": state.schedule.values(state.step)["margin"],
                  "lr": self.config.learning_rate * last_step["lr_factor"]}
        record.update(self.test_errors(state.model, record["margin"]))
        record["seconds"] = round(time.perf_counter() - state.started, 3)
        state.log.write(record)
        for callback in self.callbacks:
            callback.on_epoch_end(self, state, record)
        last = epoch + 1 == self.config.epochs or bool(state.stopped)
        if not (last or (self.config.checkpoint_every and (epoch + 1) % self.config.checkpoint_every == 0)):
            return None, record
        if last:
            for callback in self.callbacks:
                callback.on_train_end(self, state)
        field = self.make_field(copy.deepcopy(state.model), record["margin"])
        field.summary = run_summary(self, record, state.log, complete=last)
        if state.stopped:
            field.summary["stopped"] = state.stopped
        training = None if last else checkpoint_state(state, epoch + 1, time.perf_counter() - state.started,
                                                      self.config, self.model_config, self.dataset)
        if self.output is not None:
            field.save(self.output, training=training)
        for callback in self.callbacks:
            callback.on_checkpoint(self, field, epoch + 1, last)
        state.checkpointed = epoch + 1
        return field, record

    def _diverged(self, epoch: int, loss: float, state: TrainingState) -> None:
        kept = ""
        if state.good_state is not None and self.output is not None:
            model = build_model(self.model_config)
            model.load_state_dict(state.good_state)
            record = state.log.records[-1]
            field = self.make_field(model, record["margin"])
            field.summary = run_summary(self, record, state.log, complete=False)
            field.save(self.output)
            kept = f"; kept the field of epoch {epoch} in {self.output}"
        raise TrainingDiverged(f"training diverged at epoch {epoch + 1} (loss {loss}){kept}; "
                               "try a smaller learning rate or hinge weight (lam)", option="lr")


def train(dataset: PointDataset, model_config: Optional[dict[str, Any]] = None,
          config: Optional[TrainingConfig] = None, **options) -> NeuralField:
    """Train a field on ``dataset``; ``options`` are :class:`Trainer`'s (device, output, log, callbacks, quiet).

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


def run_summary(trainer: Trainer, record: dict[str, Any], log: EpochLog, complete: bool) -> dict[str, Any]:
    """A field's ``summary``: how ``trainer``'s run went up to the epoch of ``record``."""
    return {"loss": trainer.loss_name, "epochs": record["epoch"], "complete": complete,
            "config": asdict(trainer.config), "device": str(trainer.device), "diagonal": trainer.diagonal,
            "seconds": record["seconds"], "final": record, "best_mae": min(r["mae"] for r in log.records)}
