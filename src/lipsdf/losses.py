"""Training losses. Every loss takes network values ``(n,)`` and returns a scalar tensor.

* :func:`hkr_loss`: the hinge Kantorovich-Rubinstein loss of the method, for
  labelled points: ``-1`` inside (signed data) or on the surface (unsigned
  data), ``+1`` elsewhere.
* :func:`sal_loss`: sign-agnostic learning, ``| |f(x)| - d(x) |`` with the
  unsigned distance ``d``; :func:`sald_gradient_loss` adds SALD's term on the
  gradient at surface points with normals.
* :func:`distance_fit_loss` (L1 or MSE against known distances) and
  :func:`eikonal_loss` ``(|grad f| - 1)^2`` for the baselines.
* :func:`sign_hinge_loss`: hKR's hinge made consistent with known distances;
  with the L1 fit it is the ``fit-hinge`` loss, the default where a shape has
  exact distances and the network is 1-Lipschitz (a 1-Lipschitz network needs
  no eikonal term).
* :func:`input_gradient`: ``grad f`` at the inputs, kept in the graph so that
  losses on it can be trained.

:data:`LOSSES` is the one table the trainer reads: loss name -> :class:`Loss`
(the objective of a model on a :class:`Batch`, and the dataset modes it fits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

from lipsdf.errors import LipsdfError

FIT_NORMS = ("l1", "mse")


def hkr_loss(values: torch.Tensor, labels: torch.Tensor, margin: Union[float, torch.Tensor],
             lam: Union[float, torch.Tensor]) -> torch.Tensor:
    """Hinge Kantorovich-Rubinstein loss ``E[-y f(x)] + lam E[max(0, margin - y f(x))]``.

    The first (KR) term pushes ``f`` down on the ``-1`` side and up on the
    ``+1`` side as far as the 1-Lipschitz bound allows, which makes ``f`` a
    distance; the hinge asks every point to be on its side by at least
    ``margin``, which places the zero level set between the two sides.

    Examples
    --------
    >>> labels = torch.tensor([-1.0, 1.0])
    >>> float(hkr_loss(torch.tensor([-0.5, 0.5]), labels, margin=0.1, lam=10.0))
    -0.5
    >>> float(hkr_loss(torch.tensor([0.5, -0.5]), labels, margin=0.1, lam=10.0))  # both on the wrong side
    6.5
    """
    signed = labels * values
    return -signed.mean() + lam * torch.relu(margin - signed).mean()


def distance_fit_loss(values: torch.Tensor, distances: torch.Tensor, norm: str = "l1") -> torch.Tensor:
    """Mean absolute (``l1``) or squared (``mse``) error against known distances.

    Examples
    --------
    >>> float(distance_fit_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]), "mse"))
    2.5
    """
    if norm not in FIT_NORMS:
        raise LipsdfError(f"unknown distance fit norm {norm!r}; choose l1 or mse")
    error = values - distances
    return error.abs().mean() if norm == "l1" else error.square().mean()


def sign_hinge_loss(values: torch.Tensor, distances: torch.Tensor, margin: Union[float, torch.Tensor]
                    ) -> torch.Tensor:
    """``mean relu(min(margin, |d|) - sign(d) f)``: every point must be on its side of the surface by
    ``margin``, or by its own distance when that is smaller.

    hKR's hinge asks ``y f >= margin`` of every point, which no 1-Lipschitz
    ``f`` can give points closer than ``margin`` to the surface; capping the
    demand at ``|d|`` makes the exact distance a zero of this loss, so it only
    adds weight to the points on the wrong side, near the surface, where the
    zero level set is decided. Unsigned distances (``d >= 0``) ask
    ``f >= min(margin, d)``.

    Examples
    --------
    >>> d = torch.tensor([-0.5, 0.001, 0.3])
    >>> float(sign_hinge_loss(d, d, margin=0.01))  # the exact distance
    0.0
    >>> round(float(sign_hinge_loss(torch.tensor([0.2, -0.001, 0.3]), d, margin=0.01)), 6)  # two wrong signs
    0.070667
    """
    sign = torch.where(distances < 0, -1.0, 1.0)
    return torch.relu(torch.clamp(distances.abs(), max=margin) - sign * values).mean()


def sal_loss(values: torch.Tensor, unsigned_distances: torch.Tensor) -> torch.Tensor:
    """Sign-agnostic loss ``mean | |f(x)| - d(x) |`` (SAL, Atzmon and Lipman 2020).

    Examples
    --------
    >>> float(sal_loss(torch.tensor([-0.3, 0.3]), torch.tensor([0.3, 0.3])))
    0.0
    """
    return (values.abs() - unsigned_distances).abs().mean()


def sald_gradient_loss(gradients: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """SALD's sign-agnostic gradient term ``mean min(|grad f - n|, |grad f + n|)`` at surface points.

    Examples
    --------
    >>> n = torch.tensor([[0.0, 1.0]])
    >>> float(sald_gradient_loss(-n, n)), float(sald_gradient_loss(torch.tensor([[1.0, 0.0]]), n))
    (0.0, 1.4142135381698608)
    """
    return torch.minimum((gradients - normals).norm(dim=1), (gradients + normals).norm(dim=1)).mean()


def eikonal_loss(gradients: torch.Tensor) -> torch.Tensor:
    """``mean (|grad f| - 1)^2``: a distance function has unit gradient norm.

    Examples
    --------
    >>> float(eikonal_loss(torch.tensor([[3.0, 4.0], [0.6, 0.8]])))
    8.0
    """
    return (gradients.norm(dim=1) - 1.0).square().mean()


def input_gradient(values: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``d values / d points`` (``points`` must require grad), differentiable for training."""
    (gradient,) = torch.autograd.grad(values.sum(), points, create_graph=True)
    return gradient


# --------------------------------------------------------------------------- the table the trainer reads


@dataclass
class Batch:
    """What a training objective sees at one step: points with their targets (labels or distances), the
    current hKR margin and weight, the distance-fit settings, and for SALD surface points with normals."""

    points: torch.Tensor
    targets: torch.Tensor
    margin: Union[float, torch.Tensor] = 0.01  # tensors (0-d, on the device) during training
    lam: Union[float, torch.Tensor] = 100.0
    fit_norm: str = "l1"
    eikonal: float = 0.0
    sald_weight: float = 0.1
    surface_points: Optional[torch.Tensor] = None
    surface_normals: Optional[torch.Tensor] = None


Model = Callable[[torch.Tensor], torch.Tensor]


def _hkr_objective(model: Model, batch: Batch) -> torch.Tensor:
    return hkr_loss(model(batch.points), batch.targets, batch.margin, batch.lam)


def _fit_objective(model: Model, batch: Batch) -> torch.Tensor:
    if batch.eikonal == 0:
        return distance_fit_loss(model(batch.points), batch.targets, batch.fit_norm)
    points = batch.points.detach().requires_grad_(True)
    values = model(points)
    return (distance_fit_loss(values, batch.targets, batch.fit_norm)
            + batch.eikonal * eikonal_loss(input_gradient(values, points)))


def _fit_hinge_objective(model: Model, batch: Batch) -> torch.Tensor:
    values = model(batch.points)
    return (distance_fit_loss(values, batch.targets, batch.fit_norm)
            + batch.lam * sign_hinge_loss(values, batch.targets, batch.margin))


def _sal_objective(model: Model, batch: Batch) -> torch.Tensor:
    return sal_loss(model(batch.points), batch.targets)


def _sald_objective(model: Model, batch: Batch) -> torch.Tensor:
    loss = _sal_objective(model, batch)
    surface = batch.surface_points.detach().requires_grad_(True)
    values = model(surface)
    return (loss + values.abs().mean()
            + batch.sald_weight * sald_gradient_loss(input_gradient(values, surface), batch.surface_normals))


def _distance_error(values: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    return (values - distances).abs()


def _unsigned_error(values: torch.Tensor, unsigned_distances: torch.Tensor) -> torch.Tensor:
    return (values.abs() - unsigned_distances).abs()


@dataclass(frozen=True)
class Loss:
    """A training objective: the dataset modes it trains on, the function of (model, batch), the dataset
    array its batches' targets come from (``labels`` or ``distances``), whether it differentiates the
    input gradient (given the eikonal weight), which ``torch.compile`` cannot train, and for the losses
    that fit distances each point's error (what an error focus draws points by)."""

    modes: tuple[str, ...]
    objective: Callable[[Model, Batch], torch.Tensor]
    second_order: Callable[[float], bool] = lambda eikonal: False
    targets: str = "distances"
    point_error: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None  # (values, targets) -> (n,)


LOSSES: dict[str, Loss] = {
    "hkr": Loss(("signed", "unsigned"), _hkr_objective, targets="labels"),
    "fit": Loss(("dist",), _fit_objective, lambda eikonal: eikonal > 0, point_error=_distance_error),
    "fit-hinge": Loss(("signed", "unsigned", "dist"), _fit_hinge_objective, point_error=_distance_error),
    "sal": Loss(("sal",), _sal_objective, point_error=_unsigned_error),
    "sald": Loss(("sal",), _sald_objective, lambda eikonal: True, point_error=_unsigned_error),
}
DEFAULT_LOSS = {"signed": "hkr", "unsigned": "hkr", "dist": "fit", "sal": "sald"}


def default_loss(mode: str, lipschitz: bool = True, distances: bool = True) -> str:
    """The loss that trains a dataset of ``mode`` unless told otherwise.

    A 1-Lipschitz network on a dataset with exact distances (every shape but
    a point cloud) trains with ``fit-hinge``: it converges to a far more
    accurate field than hKR in the same time (``benchmarks/results/accuracy_levers.md``).
    Without distances, signed and unsigned data train with hKR; the baselines
    (MLP, SIREN) with the eikonal-regularised ``fit`` or SAL/SALD.

    Examples
    --------
    >>> default_loss("signed"), default_loss("signed", distances=False), default_loss("dist", lipschitz=False)
    ('fit-hinge', 'hkr', 'fit')
    """
    if lipschitz and distances and mode in ("signed", "unsigned", "dist"):
        return "fit-hinge"
    return DEFAULT_LOSS[mode]


def losses_for(mode: str, lipschitz: bool = True, distances: bool = True) -> list[str]:
    """The losses that train on a dataset of ``mode``, the default first.

    Examples
    --------
    >>> losses_for("sal")
    ['sald', 'sal']
    """
    first = default_loss(mode, lipschitz, distances)
    return [first] + [name for name, loss in LOSSES.items()
                      if mode in loss.modes and name != first and (distances or loss.targets == "labels")]
