"""Metrics of distance fields: pure functions of arrays, and the typed results of an evaluation.

* :func:`bounding_box_diagonal`, :func:`distance_errors`, :func:`surface_distances`,
  :func:`normal_consistency`: numbers from arrays (no field, no torch), used by
  training (test errors in the log) and by :func:`lipsdf.evaluate.evaluate_field`.
* :class:`Metrics` and its parts: what ``lipsdf eval`` measures, with
  :meth:`Metrics.table` for people and :meth:`Metrics.to_json` for files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from scipy.spatial import cKDTree

from lipsdf.files import PathLike, atomic_output


def bounding_box_diagonal(points: np.ndarray) -> float:
    """Length of the diagonal of the axis-aligned box around ``points``.

    Examples
    --------
    >>> bounding_box_diagonal(np.array([[0.0, 0.0], [3.0, 4.0]]))
    5.0
    """
    points = np.asarray(points, dtype=np.float64)
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))


def distance_errors(predicted: np.ndarray, truth: np.ndarray, signed: bool,
                    diagonal: Optional[float] = None) -> dict[str, float]:
    """Mean and max absolute error, and the share of points on the right side.

    Parameters
    ----------
    predicted : field values.
    truth : true distances, signed (negative inside) or unsigned.
    signed : compare signed values; otherwise compare ``|truth|`` with the values.
    diagonal : when given, the errors are also reported as fractions of it (``*_rel``).

    Returns
    -------
    dict with ``mae``, ``max_error`` and, for signed comparisons, ``sign_accuracy``
    over the points off the surface (``truth != 0``).

    Examples
    --------
    >>> distance_errors(np.array([0.1, -0.2, 0.5]), np.array([0.0, -0.1, 0.4]), signed=True)
    {'mae': 0.1, 'max_error': 0.1, 'sign_accuracy': 1.0}
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if not signed:
        truth = np.abs(truth)
    error = np.abs(predicted - truth)
    metrics = {"mae": round(float(error.mean()), 12), "max_error": round(float(error.max()), 12)}
    if signed:
        off = truth != 0
        metrics["sign_accuracy"] = float((np.sign(predicted[off]) == np.sign(truth[off])).mean()) if off.any() else 1.0
    if diagonal:
        metrics["mae_rel"] = metrics["mae"] / diagonal
        metrics["max_error_rel"] = metrics["max_error"] / diagonal
    return metrics


def surface_distances(a_to_b: np.ndarray, b_to_a: np.ndarray) -> dict[str, float]:
    """Chamfer L1 / L2 and Hausdorff distance from the two directed distance samples between surfaces.

    ``a_to_b`` are the distances from points spread evenly on surface A to
    surface B, ``b_to_a`` the other way. ``chamfer_l1`` is the mean of the two
    means, ``chamfer_l2`` the same with squared distances, ``hausdorff`` the
    largest distance either way.

    Examples
    --------
    >>> surface_distances(np.array([0.1, 0.1]), np.array([0.1, 0.3]))
    {'chamfer_l1': 0.15, 'chamfer_l2': 0.03, 'hausdorff': 0.3}
    """
    return {"chamfer_l1": round(float(0.5 * (a_to_b.mean() + b_to_a.mean())), 12),
            "chamfer_l2": round(float(0.5 * ((a_to_b ** 2).mean() + (b_to_a ** 2).mean())), 15),
            "hausdorff": round(float(max(a_to_b.max(), b_to_a.max())), 12)}


def normal_consistency(a: np.ndarray, a_normals: np.ndarray, b: np.ndarray, b_normals: np.ndarray) -> float:
    """Mean ``|n_a . n_b|`` between each point's unit normal and its nearest neighbour's on the other
    surface, both ways (orientation ignored: 1 when the surfaces are parallel everywhere).

    Examples
    --------
    >>> a = np.array([[0.0, 0.0], [1.0, 0.0]])
    >>> normal_consistency(a, np.array([[0.0, 1.0], [0.0, 1.0]]), a + 0.1, np.array([[0.0, -1.0], [1.0, 0.0]]))
    0.5
    """
    a_index = cKDTree(b).query(a, workers=-1)[1]
    b_index = cKDTree(a).query(b, workers=-1)[1]
    forward = np.abs((a_normals * b_normals[a_index]).sum(axis=1)).mean()
    backward = np.abs((b_normals * a_normals[b_index]).sum(axis=1)).mean()
    return float(0.5 * (forward + backward))


@dataclass(frozen=True)
class DistanceErrors:
    """Errors of field values against true distances over a group of points (see :func:`distance_errors`)."""

    mae: float
    max_error: float
    n: int
    sign_accuracy: Optional[float] = None
    mae_rel: Optional[float] = None
    max_error_rel: Optional[float] = None

    @classmethod
    def of(cls, predicted: np.ndarray, truth: np.ndarray, signed: bool,
           diagonal: Optional[float] = None) -> "DistanceErrors":
        return cls(n=len(predicted), **distance_errors(predicted, truth, signed, diagonal))

    def to_dict(self) -> dict[str, Any]:
        """The errors as plain numbers; entries that do not apply (sign accuracy of an unsigned field) are left out."""
        items = {"mae": self.mae, "max_error": self.max_error, "sign_accuracy": self.sign_accuracy,
                 "mae_rel": self.mae_rel, "max_error_rel": self.max_error_rel, "n": self.n}
        return {key: value for key, value in items.items() if value is not None}


@dataclass(frozen=True)
class GradientStats:
    """Gradient norms of a field over a set of points (a 1-Lipschitz field's are at most 1)."""

    min: float
    median: float
    mean: float
    max: float

    @classmethod
    def of(cls, norms: np.ndarray) -> "GradientStats":
        return cls(float(norms.min()), float(np.median(norms)), float(norms.mean()), float(norms.max()))


@dataclass(frozen=True)
class LipschitzCheck:
    """The largest ``|f(x) - f(y)| / |x - y|`` seen over ``pairs`` random pairs."""

    pairs: int
    max_ratio: float


@dataclass(frozen=True)
class SurfaceMetrics:
    """A field's level set against the input shape: Chamfer, Hausdorff (world units and ``*_rel`` fractions of
    the diagonal, ``chamfer_l2_rel`` of its square) and normal consistency (None where the input has no normals)."""

    chamfer_l1: float
    chamfer_l2: float
    hausdorff: float
    normal_consistency: Optional[float]
    chamfer_l1_rel: float
    hausdorff_rel: float
    chamfer_l2_rel: float


@dataclass
class Metrics:
    """Everything :func:`lipsdf.evaluate.evaluate_field` measures, in world units.

    ``distance`` maps each group of points (``uniform``, ``near``, ``all``) to its errors;
    ``overestimate_fraction`` is the share of points where ``|f|`` exceeds the true distance;
    ``surface`` is None when the field has no level set in its box.

    Examples
    --------
    >>> metrics = Metrics("signed", "sll", 2.0, {"all": DistanceErrors(0.01, 0.02, 10, 1.0, 0.005, 0.01)},
    ...                   0.0, 0.0, GradientStats(0.9, 0.95, 0.95, 1.0), LipschitzCheck(10, 0.5), None, 1.0)
    >>> print(" ".join(metrics.table().splitlines()[-1].split()))
    largest |f(x) - f(y)| / |x - y| 0.500000 over 10 random pairs
    >>> Metrics.from_dict(json.loads(metrics.to_json())) == metrics
    True
    """

    kind: str
    arch: str
    diagonal: float
    distance: dict[str, DistanceErrors]
    overestimate_fraction: float
    overestimate_max: float
    gradient_norm: GradientStats
    lipschitz: LipschitzCheck
    surface: Optional[SurfaceMetrics]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "arch": self.arch, "diagonal": self.diagonal,
                "distance": {group: errors.to_dict() for group, errors in self.distance.items()},
                "overestimate_fraction": self.overestimate_fraction, "overestimate_max": self.overestimate_max,
                "gradient_norm": asdict(self.gradient_norm), "lipschitz": asdict(self.lipschitz),
                "surface": None if self.surface is None else asdict(self.surface), "seconds": self.seconds}

    def to_json(self) -> str:
        """The metrics as the JSON text of ``lipsdf eval``'s output file."""
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: PathLike, **extra: Any) -> Path:
        """Write :meth:`to_dict` (plus ``extra`` entries) as JSON, atomically; returns the path."""
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps({**self.to_dict(), **extra}, indent=2))
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Metrics":
        """Read back :meth:`to_dict`'s output (extra keys, such as ``lipsdf fit``'s ``settings``, are ignored)."""
        surface = data.get("surface")
        seconds = data.get("seconds", 0.0)
        return cls(data["kind"], data["arch"], data["diagonal"],
                   {group: DistanceErrors(**errors) for group, errors in data["distance"].items()},
                   data["overestimate_fraction"], data["overestimate_max"], GradientStats(**data["gradient_norm"]),
                   LipschitzCheck(**data["lipschitz"]), None if surface is None else SurfaceMetrics(**surface),
                   seconds if isinstance(seconds, (int, float)) else seconds.get("eval", 0.0))

    def table(self) -> str:
        """The metrics as a plain-text table (lengths also as % of the diagonal)."""
        rows: list[tuple[str, str, str]] = []

        def length(name: str, value: float) -> None:
            rows.append((name, f"{value:.4g}", f"{100 * value / self.diagonal:.3f}% of diagonal"))

        for group, errors in self.distance.items():
            length(f"mean |f - d|, {group} points", errors.mae)
            length(f"max |f - d|, {group} points", errors.max_error)
            if errors.sign_accuracy is not None:
                rows.append((f"sign accuracy, {group} points", f"{100 * errors.sign_accuracy:.2f}%", ""))
        rows.append(("|f| > true distance", f"{100 * self.overestimate_fraction:.2f}%", "of the points"))
        g = self.gradient_norm
        rows.append(("gradient norm min / median / max", f"{g.min:.3f} / {g.median:.3f} / {g.max:.3f}", ""))
        surface = self.surface
        if surface is not None:
            length("Chamfer L1 (contour vs input)", surface.chamfer_l1)
            rows.append(("Chamfer L2 (contour vs input)", f"{surface.chamfer_l2:.4g}",
                         f"{surface.chamfer_l2_rel:.3g} of diagonal^2"))
            length("Hausdorff (contour vs input)", surface.hausdorff)
            if surface.normal_consistency is not None:
                rows.append(("normal consistency", f"{surface.normal_consistency:.4f}", ""))
        else:
            rows.append(("contour", "empty", "the field has no level set in its box"))
        rows.append(("largest |f(x) - f(y)| / |x - y|", f"{self.lipschitz.max_ratio:.6f}",
                     f"over {self.lipschitz.pairs} random pairs"))
        width = max(len(row[0]) for row in rows) + 2
        value_width = max(len(row[1]) for row in rows) + 2
        return "\n".join(f"{a:<{width}}{b:>{value_width - 2}}  {c}".rstrip() for a, b, c in rows)
