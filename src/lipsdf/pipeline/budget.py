"""A fit's time budget: what it is, and the epochs it buys on this machine.

A fit given a budget measures its training step on the real data (:meth:`~lipsdf.training.Trainer.step_cost`,
about a second and a half), then fixes the epochs that fill what the budget has left after sampling and
after the stages that follow training. The epochs are recorded (``plan.json``, ``metrics.json``, the
field's summary), so a rerun with ``--epochs`` and a resume repeat the same run exactly.

A machine can slow down after the measurement (a shared host, a hot CPU): :class:`TimeLimit` then ends
training at the epoch after which the next one would pass the budget's training deadline, and the field's
summary says so (``stopped``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from lipsdf.training import Callback, StepCost, Trainer, TrainingConfig, TrainingState

PROBE_SECONDS = 1.5  # of timed training steps on the real data (CPU; a GPU needs far less)
# The share of the time left that training is planned to fill: a step's cost drifts by a few percent over
# a long run on a shared machine (benchmarks/results/defaults.md lists planned against actual seconds).
PLANNED_SHARE = 0.96


@dataclass(frozen=True)
class Budget:
    """A fit's time budget (seconds, the whole fit) and, once sized, what it bought.

    Attributes
    ----------
    seconds : the budget.
    finish_seconds : kept for the stages after training (contour, render, eval).
    epochs : the epochs chosen (None until sized).
    epoch_seconds : one epoch's measured cost.
    step_seconds : one step's measured cost, by matmul precision.
    train_seconds : the time training was planned to take.
    """

    seconds: float
    finish_seconds: float
    epochs: Optional[int] = None
    epoch_seconds: Optional[float] = None
    step_seconds: dict[str, float] = field(default_factory=dict)
    train_seconds: Optional[float] = None

    def sized(self, cost: StepCost, elapsed: float, steps_per_epoch: int) -> "Budget":
        """The budget with its epochs fixed: those that fill the time left after ``elapsed`` seconds and
        the finishing stages, at ``cost``, for epochs of ``steps_per_epoch`` steps.

        Examples
        --------
        >>> budget = Budget(100.0, finish_seconds=5.0)
        >>> slow = budget.sized(StepCost({"float32": 1 / 16}), 5.0, steps_per_epoch=10)
        >>> fast = budget.sized(StepCost({"float32": 1 / 32}), 5.0, steps_per_epoch=10)
        >>> slow.epochs, fast.epochs  # 0.96 of the 90 s left, at 10 steps an epoch
        (138, 276)
        """
        available = max(0.0, PLANNED_SHARE * (self.seconds - elapsed - self.finish_seconds))
        epochs = cost.epochs_within(available, steps_per_epoch)
        epoch_seconds = cost.epoch_seconds(steps_per_epoch)
        return replace(self, epochs=epochs, epoch_seconds=round(epoch_seconds, 4),
                       step_seconds={key: round(value, 6) for key, value in cost.step_seconds.items()},
                       train_seconds=round(epochs * epoch_seconds, 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for the fit's log."""
        line = f"time budget {format_seconds(self.seconds)}"
        if self.epochs is None:
            return line
        steps = ", ".join(f"{1000 * value:.1f} ms ({key})" for key, value in self.step_seconds.items())
        return (f"{line}: a step costs {steps}, an epoch {self.epoch_seconds:.2f} s; training {self.epochs} "
                f"epochs (about {format_seconds(self.train_seconds)})")


class TimeLimit(Callback):
    """Ends training at the epoch after which the next one would end past ``deadline``
    (``time.perf_counter()``), the next epoch's cost taken as the last one's.

    Examples
    --------
    >>> from lipsdf.sampling import sample
    >>> from lipsdf.geometry.primitives import circle
    >>> data = sample(circle(), "signed", n=1000, n_test=200, seed=0)
    >>> config = TrainingConfig(epochs=50, batch_size=500, checkpoint_every=0)
    >>> late = TimeLimit(deadline=time.perf_counter())  # already due: the first epoch is the last
    >>> field = Trainer(data, {"arch": "sll", "layers": 2, "width": 8}, config, callbacks=[late]).run()
    >>> field.summary["epochs"], field.summary["stopped"].startswith("time budget: stopped after epoch 1 of 50")
    (1, True)
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.epoch_ended: Optional[float] = None

    def on_train_start(self, trainer: Trainer, state: TrainingState) -> None:
        self.epoch_ended = time.perf_counter()

    def on_epoch_end(self, trainer: Trainer, state: TrainingState, record: dict[str, Any]) -> None:
        now = time.perf_counter()
        last_epoch = now - (self.epoch_ended or now)
        self.epoch_ended = now
        if now + last_epoch > self.deadline and record["epoch"] < trainer.config.epochs:
            state.stopped = (f"time budget: stopped after epoch {record['epoch']} of {trainer.config.epochs}, "
                             "the machine ran slower than measured")


def format_seconds(seconds: float) -> str:
    """``95.0`` -> ``1 min 35 s``; ``42.5`` -> ``42 s``.

    Examples
    --------
    >>> format_seconds(600), format_seconds(95.0), format_seconds(42.5)
    ('10 min', '1 min 35 s', '42 s')
    """
    minutes, rest = divmod(int(round(seconds)), 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min" + (f" {rest} s" if rest else "")
