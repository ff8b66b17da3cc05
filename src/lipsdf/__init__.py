"""lipsdf: 1-Lipschitz neural distance fields.

The pipeline is ``load_shape -> sample -> Trainer -> NeuralField -> queries``,
or all of it in one call with :func:`fit`::

    from lipsdf import fit, load_shape, NeuralField, sample, Trainer, evaluate_field

Names are imported on first use, so ``import lipsdf`` stays light (no torch
until a name that needs it is touched).
"""

from __future__ import annotations

import importlib
from typing import Any

from lipsdf.errors import LipsdfError
from lipsdf.version import __version__

# name -> module that defines it: the public API, in pipeline order.
_API = {
    "load_shape": "lipsdf.geometry.io", "save_shape": "lipsdf.geometry.io", "save_points": "lipsdf.geometry.io",
    "Polyline": "lipsdf.geometry.shapes", "TriangleMesh": "lipsdf.geometry.shapes",
    "PointCloud": "lipsdf.geometry.shapes",
    "Normalization": "lipsdf.geometry.normalize", "GroundTruth": "lipsdf.geometry.distance",
    "sample": "lipsdf.sampling", "SamplingConfig": "lipsdf.sampling", "PointDataset": "lipsdf.dataset",
    "Trainer": "lipsdf.training", "TrainingConfig": "lipsdf.training", "train": "lipsdf.training",
    "NeuralField": "lipsdf.field",
    "contour": "lipsdf.query.contour", "project": "lipsdf.query.project", "sample_surface": "lipsdf.query.project",
    "skeleton": "lipsdf.query.skeleton", "sphere_trace": "lipsdf.query.trace", "trace_image": "lipsdf.query.trace",
    "orbit_camera": "lipsdf.query.trace", "Camera": "lipsdf.query.trace",
    "evaluate_field": "lipsdf.evaluate", "EvaluationConfig": "lipsdf.evaluate", "Metrics": "lipsdf.metrics",
    "FitOptions": "lipsdf.pipeline", "plan_fit": "lipsdf.pipeline", "fit": "lipsdf.pipeline",
    "fit_many": "lipsdf.pipeline",
}

__all__ = ["LipsdfError", "__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'lipsdf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
