"""Where a trained network's zero level goes: the constant a field adds to its network.

A constant shift keeps a network 1-Lipschitz, so it is free to choose; :func:`zero_level_offset` chooses it
so that the field's zero set sits on the shape. Measured in ``benchmarks/accuracy_levers.py``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

SURFACE_LEVEL_POINTS = 4096  # surface samples that set a field's zero level

OffsetRule = Callable[[torch.nn.Module, "OffsetContext"], float]


class OffsetContext:
    """What an offset rule may look at besides the network: the field's kind, loss, recipe, the hinge's
    margin at the end of training, and the shape's own surface samples (unit box)."""

    def __init__(self, kind: str, loss: str, recipe: str, margin: float, surface_points: np.ndarray,
                 device: torch.device) -> None:
        self.kind, self.loss, self.recipe, self.margin = kind, loss, recipe, margin
        self.surface_points, self.device = surface_points, device

    def surface_median(self, model: torch.nn.Module) -> float:
        """The median of ``model`` on (the first 4096 of) the shape's surface samples."""
        surface = self.surface_points[:SURFACE_LEVEL_POINTS]
        with torch.no_grad():
            values = model(torch.as_tensor(surface, dtype=torch.float32, device=self.device))
        return float(values.median())


def zero_level_offset(model: torch.nn.Module, context: OffsetContext) -> float:
    """What puts the field's zero level on the shape (unit-box units, added to the network).

    Signed fields, ``lipsdf`` recipe: minus the network's median on the shape's surface samples (0 with the
    ``paper`` recipe). The zero set should be where the shape is; a constant shift that puts half the
    surface samples on each side removes the field's bias there, which no training step targets directly
    (the loss weighs every point alike).

    Unsigned fields: the margin for hKR; for losses on distances, minus that median capped at a quarter of
    the margin. A 1-Lipschitz network cannot make the sharp crease of an unsigned distance on its zero set
    (a cone around a curve, a V across a sheet): it rounds the bottom off, a little above zero. The field
    ``|g - level|`` puts that bottom back at zero, so the thin level sets drawn just above it are tubes
    around the whole shape rather than broken pieces of one. The cap keeps the field at least 3/4 of the
    margin above zero between nearby parts of the shape, where the hinge holds it up: a larger shift, from
    an under-trained field, would draw webs there again.

    Examples
    --------
    >>> import numpy as np, torch
    >>> model = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.zero_(), model.bias.fill_(0.3)
    >>> context = OffsetContext("signed", "fit-hinge", "lipsdf", 0.0025, np.zeros((4, 2)), torch.device("cpu"))
    >>> round(zero_level_offset(lambda x: model(x)[:, 0], context), 6)
    -0.3
    """
    if context.kind != "unsigned":
        return 0.0 if context.recipe == "paper" else -context.surface_median(model)
    if context.loss == "hkr":
        return context.margin
    return -min(context.surface_median(model), context.margin / 4)

