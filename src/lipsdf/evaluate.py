"""Metrics of a field's values against ground-truth distances."""

from __future__ import annotations

from typing import Optional

import numpy as np


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
