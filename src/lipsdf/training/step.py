"""One training step, all on the device, and what it runs on: the data, the optimiser, the run's state.

All training tensors live on the device; a batch is a slice of a shuffled index, with no per-batch Python
data loading, and the step reads nothing back to the host (its schedules are tensor arithmetic on a step
counter), so on CUDA it is captured once as a CUDA graph and replayed.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import torch

from lipsdf.dataset import PointDataset
from lipsdf.field import resolve_device
from lipsdf.losses import Batch, Loss
from lipsdf.training.config import Schedule, TrainingConfig
from lipsdf.training.log import EpochLog
from lipsdf.training.muon import Optimisers, StackedMuon

GRAPH_WARMUP = 3  # eager steps before a CUDA graph is captured (lets the allocator and kernels settle)


@dataclass
class DeviceData:
    """The dataset's arrays as float32 tensors on the training device."""

    points: torch.Tensor
    targets: torch.Tensor
    surface_points: torch.Tensor
    surface_normals: Optional[torch.Tensor]

    @classmethod
    def of(cls, dataset: PointDataset, targets: str, device: torch.device) -> "DeviceData":
        """``targets``: the array the loss fits, ``labels`` or ``distances``."""
        def tensor(array):
            return torch.as_tensor(np.asarray(array, dtype=np.float32), device=device)

        normals = dataset.arrays.get("surface_normals")
        return cls(tensor(dataset.points), tensor(dataset.arrays[targets]), tensor(dataset.surface_points),
                   None if normals is None else tensor(normals))


def build_optimiser(model: torch.nn.Module, config: TrainingConfig, device: torch.device,
                    lr: Optional[torch.Tensor] = None, stacked: bool = False) -> Union[torch.optim.Optimizer, Optimisers]:
    """The optimiser of a run: fused Adam (one kernel per step for all parameters) at ``config``'s learning
    rate and beta2; with ``optimiser="muon"``, :class:`~lipsdf.training.muon.StackedMuon` for the model's
    matrices at ``muon_lr`` and Adam for the rest. The learning rate is the device tensor ``lr``, which the
    schedule sets inside the (capturable) step; Muon's is the same tensor scaled by ``muon_lr / lr``.
    ``stacked``: the model is a :class:`~lipsdf.training.stacked.StackedNetworks`, whose parameters have
    one more (leading) dimension than a network's.

    Examples
    --------
    >>> optimiser = build_optimiser(torch.nn.Linear(2, 1), TrainingConfig(adam_beta2=0.95), torch.device("cpu"))
    >>> optimiser.param_groups[0]["betas"]
    (0.9, 0.95)
    >>> [len(g["params"]) for g in build_optimiser(torch.nn.Linear(2, 2), TrainingConfig(optimiser="muon"),
    ...                                            torch.device("cpu")).param_groups]
    [1, 1]
    """
    lr = torch.tensor(config.learning_rate, device=device) if lr is None else lr
    capturable = device.type == "cuda"
    if config.optimiser == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, config.adam_beta2), fused=True,
                                capturable=capturable)
    matrix = 3 if stacked else 2
    matrices = [p for p in model.parameters() if p.ndim == matrix]
    others = [p for p in model.parameters() if p.ndim != matrix]
    muon = StackedMuon(matrices, lr=lr, scale=config.muon_lr / config.learning_rate)
    if not others:
        return Optimisers(muon)
    return Optimisers(muon, torch.optim.Adam(others, lr=lr, betas=(0.9, config.adam_beta2), fused=True,
                                             capturable=capturable))


@dataclass
class TrainingState:
    """The state of one training run. The step's inputs (the epoch's shuffled order, the step count, the
    learning rate) are device tensors updated in place, so a captured CUDA graph can replay the step."""

    model: torch.nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    optimiser: Union[torch.optim.Optimizer, Optimisers]
    data: DeviceData
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
    stopped: Optional[str] = None  # why the run ends before its last epoch (set by a callback)
    focus: float = 0.0  # points drawn by error per point of the permutation (TrainingConfig.error_focus)
    errors: Optional[torch.Tensor] = None  # (n,) each point's error when last trained on, under a focus

    def shuffle(self, device: torch.device) -> None:
        """A new epoch: the points in a new order (every batch full: the last one wraps around); under an
        error focus, the slots beyond the permutation hold points drawn in proportion to their last error."""
        n, slots = len(self.data.points), len(self.order)
        focused = round(self.focus / (1 + self.focus) * slots) if self.errors is not None else 0
        order = torch.randperm(n, device=device, generator=self.generator)
        order = order.repeat(math.ceil((slots - focused) / n))[:slots - focused]
        if focused:
            weights = torch.clamp(self.errors, min=1e-12)  # a point fitted exactly keeps a (tiny) chance
            drawn = torch.multinomial(weights, focused, replacement=True, generator=self.generator)
            order = torch.cat([order, drawn])[torch.randperm(slots, device=device, generator=self.generator)]
        self.order.copy_(order)
        self.loss_sum.zero_()

    def record_errors(self, loss: Loss, index: torch.Tensor, values: torch.Tensor) -> None:
        """Keep the error of the batch's points ``index`` at their ``values`` (a no-op without a focus)."""
        if self.errors is not None:
            targets = self.data.targets.index_select(0, index)
            self.errors.index_copy_(0, index, loss.point_error(values.detach().float(), targets))


def focuses(config: TrainingConfig, loss: Loss) -> bool:
    """Whether a run of ``config`` and ``loss`` draws part of its epochs by error."""
    return config.error_focus > 0 and loss.point_error is not None


def epoch_shape(points: int, config: TrainingConfig, loss: Loss) -> tuple[int, int]:
    """The batch size and the steps of an epoch over ``points`` training points: every point once, and
    under an error focus ``error_focus`` times as many again drawn by error.

    Examples
    --------
    >>> from lipsdf.losses import LOSSES
    >>> epoch_shape(10_000, TrainingConfig(batch_size=1000), LOSSES["fit-hinge"])
    (1000, 10)
    >>> epoch_shape(10_000, TrainingConfig(batch_size=1000, error_focus=0.25), LOSSES["fit-hinge"])
    (1000, 13)
    """
    batch = min(config.batch_size, points)
    return batch, math.ceil(points * (1 + config.error_focus * focuses(config, loss)) / batch)


def new_state(model: torch.nn.Module, forward: Callable, data: DeviceData, config: TrainingConfig, kind: str,
              log: EpochLog, device: torch.device, loss: Loss) -> TrainingState:
    """A run at its first step: optimiser, schedule and the step's device tensors (with each point's error,
    starting equal, where ``config`` focuses on errors and ``loss`` has them)."""
    generator = torch.Generator(device=device).manual_seed(config.seed)
    lr = torch.tensor(config.learning_rate, device=device)
    optimiser = build_optimiser(model, config, device, lr)
    n = len(data.points)
    batch, steps_per_epoch = epoch_shape(n, config, loss)
    focused = focuses(config, loss)
    schedule = Schedule(config, steps_per_epoch * config.epochs, steps_per_epoch, kind)
    return TrainingState(model, forward, optimiser, data, generator, schedule, log, batch, steps_per_epoch,
                         time.perf_counter(),
                         order=torch.zeros(steps_per_epoch * batch, dtype=torch.long, device=device),
                         step_count=torch.zeros((), dtype=torch.float64, device=device), lr=lr,
                         loss_sum=torch.zeros((), device=device), focus=config.error_focus,
                         errors=torch.ones(n, device=device) if focused else None)


def uses_bf16(config: TrainingConfig, state: TrainingState) -> bool:
    """Whether this step's products run in bfloat16: the first ``bf16_share`` of the steps under ``bf16``."""
    return config.matmul_precision == "bf16" and state.step < config.bf16_share * state.schedule.total_steps


def eager_step(state: TrainingState, loss: Loss, loss_name: str, config: TrainingConfig,
               device: torch.device) -> None:
    """One optimisation step, all on the device: nothing in it reads a value back to the host."""
    data = state.data
    row = torch.remainder(state.step_count, state.steps_per_epoch).long().reshape(1)
    index = state.order.view(state.steps_per_epoch, state.batch).index_select(0, row)[0]
    batch = Batch(data.points.index_select(0, index), data.targets.index_select(0, index),
                  state.schedule.margin(state.step_count), state.schedule.lam(state.step_count), config.fit_norm,
                  config.eikonal, config.sald_weight)
    if loss_name == "sald":
        pick = torch.randint(len(data.surface_points), (max(state.batch // 4, 1),), device=device,
                             generator=state.generator)
        batch.surface_points, batch.surface_normals = data.surface_points[pick], data.surface_normals[pick]
    state.lr.copy_(config.learning_rate * state.schedule.lr_factor(state.step_count))
    state.optimiser.zero_grad(set_to_none=True)
    seen: list[torch.Tensor] = []  # the values at the batch's points: every objective's first evaluation

    def forward(points: torch.Tensor) -> torch.Tensor:
        values = state.forward(points)
        if not seen:
            seen.append(values)
        return values

    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(config, state)):
        value = loss.objective(forward, batch)
    state.record_errors(loss, index, seen[0])
    value.backward()
    state.optimiser.step()
    state.loss_sum.add_(value.detach())
    state.step_count.add_(1)


def graph_step(state: TrainingState, step: Callable[[], None], bf16: bool, device: torch.device) -> None:
    """The step on CUDA: a few eager warm-up steps on a side stream, then the step captured once as a CUDA
    graph and replayed (one launch per step instead of hundreds); captured again when ``bf16`` changes."""
    if state.graph is not None and state.graph_bf16 != bf16:
        state.graph, state.warm_steps = None, 0
    if state.graph is None:
        if state.warm_steps < GRAPH_WARMUP:
            if state.warm_steps == 0:
                state.side_stream = torch.cuda.Stream(device)
                state.side_stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(state.side_stream):
                step()
            state.warm_steps += 1
            return
        torch.cuda.current_stream(device).wait_stream(state.side_stream)
        graph = torch.cuda.CUDAGraph()
        state.graph_bf16 = bf16
        with torch.cuda.graph(graph):
            step()
        state.graph = graph
    state.graph.replay()


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
    that supports bfloat16."""
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so looked up with care
    try:
        return any(bool(getattr(torch.cpu, check)()) for check in checks if hasattr(torch.cpu, check))
    except Exception:  # noqa: BLE001 - an unknown CPU or torch build: assume float32 is the fast path
        return False


def finite(model: torch.nn.Module) -> bool:
    """No NaN or infinity in any parameter: one reduction and one host sync for the whole model."""
    return bool(torch.isfinite(torch.cat([p.detach().flatten() for p in model.parameters()])).all())


@dataclass(frozen=True)
class StepCost:
    """Seconds of a training step by matmul precision, and of an epoch's end (its test errors), on this
    machine: what a time budget buys (:meth:`epochs_within`)."""

    step_seconds: dict[str, float]
    epoch_end_seconds: float = 0.0
    bf16_share: float = 0.75

    def epoch_seconds(self, steps_per_epoch: int) -> float:
        """One epoch, with ``bf16_share`` of the steps at the bfloat16 rate where both were timed."""
        step = self.step_seconds
        mean = (self.bf16_share * step["bf16"] + (1 - self.bf16_share) * step["float32"]
                if {"bf16", "float32"} <= set(step) else next(iter(step.values())))
        return steps_per_epoch * mean + self.epoch_end_seconds

    def epochs_within(self, seconds: float, steps_per_epoch: int) -> int:
        """The epochs that fit in ``seconds`` (at least one).

        Examples
        --------
        >>> StepCost({"float32": 0.01}).epochs_within(60.0, 100), StepCost({"float32": 0.005}).epochs_within(60.0, 100)
        (60, 120)
        """
        return max(1, int(seconds / self.epoch_seconds(steps_per_epoch)))


def time_steps(step: Callable[[], None], device: torch.device, seconds: float, warmup: int = GRAPH_WARMUP + 2,
               most: int = 400) -> float:
    """Seconds per call of ``step`` after ``warmup`` calls, timed over about ``seconds`` (at least 3 calls,
    at most ``most``)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    started, calls = time.perf_counter(), 0
    while calls < 3 or (calls < most and time.perf_counter() - started < seconds):
        step()
        calls += 1
        if calls % 8 == 0:
            sync()
    sync()
    return (time.perf_counter() - started) / calls
