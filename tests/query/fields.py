"""Fields for query tests: exact analytic SDFs wrapped as fields, and small trained fields.

A plain module (not a conftest) so that test files can import it by name; the
session fixtures that train fields once live in tests/conftest.py.
"""

from typing import Callable

import numpy as np
import torch
from torch import nn

from lipsdf.field import NeuralField
from lipsdf.geometry.normalize import Normalization
from lipsdf.geometry.primitives import circle, sphere
from lipsdf.sampling import sample
from lipsdf.training import TrainingConfig, train


def _box(q: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    d = q.abs() - half
    return d.clamp(min=0).norm(dim=1) + d.max(dim=1).values.clamp(max=0)


SDFS: dict[str, Callable[..., torch.Tensor]] = {
    "sphere": lambda q, radius=1.0: q.norm(dim=1) - radius,
    "circle": lambda q, radius=1.0: q.norm(dim=1) - radius,
    "torus": lambda q, major=1.0, minor=0.35: torch.hypot(q[:, :2].norm(dim=1) - major, q[:, 2]) - minor,
    "box": lambda q, half=(1.0, 0.5, 0.5): _box(q, torch.tensor(half, dtype=q.dtype)),
    "rectangle": lambda q, half=(1.0, 0.5): _box(q, torch.tensor(half, dtype=q.dtype)),
}


class AnalyticSDF(nn.Module):
    """An exact SDF of world points ``x``, centred at ``center``, as a function of unit-box points."""

    def __init__(self, name: str, normalization: Normalization, params: dict) -> None:
        super().__init__()
        self.sdf, self.params = SDFS[name], params
        self.register_buffer("center", torch.tensor(normalization.center, dtype=torch.float64))
        self.scale = normalization.scale

    def forward(self, unit: torch.Tensor) -> torch.Tensor:
        # In float64, so that the tests see the query's error, not float32's.
        world_offset = unit.double() * self.scale
        return (self.sdf(world_offset, **self.params) / self.scale).to(unit.dtype)

    def freeze(self) -> None:
        pass


class AnalyticField(NeuralField):
    """An exact signed distance (1-Lipschitz), so every query's guarantee applies."""

    is_lipschitz = True


def analytic_field(name: str, center=None, scale: float = 1.5, **params) -> AnalyticField:
    """The SDF of ``name`` (centred at ``center``, world units) in a field whose unit box has half-side ``scale``."""
    dim = 2 if name in ("circle", "rectangle") else 3
    center = np.zeros(dim) if center is None else np.asarray(center, dtype=np.float64)
    normalization = Normalization(center, scale)
    return AnalyticField(AnalyticSDF(name, normalization, params), normalization, {"arch": "analytic", "dim": dim})


FAST = dict(epochs=30, batch_size=1024, lr=5e-3, lam=10.0, checkpoint_every=0, loss="hkr")  # hKR converges fastest at these tiny budgets
CIRCLE_CENTER, CIRCLE_RADIUS = np.array([40.0, -10.0]), 5.0
SPHERE_CENTER, SPHERE_RADIUS = np.array([3.0, -1.0, 2.0]), 2.0


def trained_circle_field() -> NeuralField:
    """A small SLL field trained on a circle of radius 5 at (40, -10), far from the unit box."""
    data = sample(circle(CIRCLE_RADIUS, n=256, center=tuple(CIRCLE_CENTER)), "signed", n=20_000, n_test=2_000, seed=0)
    return train(data, {"arch": "sll", "layers": 6, "width": 32}, TrainingConfig(**FAST))


def trained_sphere_field() -> NeuralField:
    """A small SLL field trained on a sphere of radius 2 at (3, -1, 2)."""
    shape = sphere(SPHERE_RADIUS).transformed(lambda v: v + SPHERE_CENTER)
    data = sample(shape, "signed", n=20_000, n_test=2_000, seed=0)
    return train(data, {"arch": "sll", "layers": 6, "width": 32}, TrainingConfig(**FAST))
