"""A trained field against the shape it was trained on.

:func:`evaluate_field` is what ``lipsdf eval`` runs: distance errors on
uniform and near-surface points, gradient norms, the largest slope over
random pairs (a 1-Lipschitz field's is at most 1), and distances between the
field's extracted contour and the input (Chamfer, Hausdorff, normals). It
returns a typed :class:`~lipsdf.metrics.Metrics`; the array arithmetic lives
in :mod:`lipsdf.metrics`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from lipsdf.errors import LipsdfError
from lipsdf.field import DEFAULT_BATCH_SIZE, NeuralField
from lipsdf.geometry.distance import GroundTruth
from lipsdf.geometry.normals import estimate_normals
from lipsdf.geometry.shapes import PointCloud, Shape
from lipsdf.geometry.surface import near_surface_samples, surface_samples, uniform_samples
from lipsdf.metrics import (DistanceErrors, GradientStats, LipschitzCheck, Metrics, SurfaceMetrics,
                            bounding_box_diagonal, normal_consistency, surface_distances)
from lipsdf.query.contour import default_level, shape_contour


@dataclass
class EvaluationConfig:
    """How many points each metric of :func:`evaluate_field` uses.

    Attributes
    ----------
    n_uniform : points uniform in the field's box.
    n_near : points near the surface.
    near_sigmas : Gaussian noise scales around the surface, in unit-box units (as in sampling).
    n_pairs : random pairs for the Lipschitz ratio.
    n_surface : samples on each surface for Chamfer and Hausdorff.
    resolution : the contour's grid (default: 128 in 3D, 512 in 2D).
    seed : random seed; same seed, same metrics.
    """

    n_uniform: int = 20_000
    n_near: int = 20_000
    near_sigmas: tuple[float, ...] = (0.01, 0.05)
    n_pairs: int = 100_000
    n_surface: int = 100_000
    resolution: Optional[int] = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_uniform", "n_near", "n_pairs", "n_surface"):
            if getattr(self, name) < 1:
                raise LipsdfError(f"{name.replace('_', ' ')} must be a positive number, got {getattr(self, name)}",
                                  option=name)


def lipschitz_ratio(field: NeuralField, n_pairs: int = 100_000, seed: int = 0, batch_size: int = 8192) -> float:
    """The largest ``|f(x) - f(y)| / |x - y|`` over random pairs in the field's box.

    Half the pairs are independent uniform points; the other half are a
    uniform point and a neighbour at a log-uniform distance from 1e-3 to 1
    (unit box), which probes the local slope. The network is evaluated in
    float64 so that rounding does not pose as a slope (float32 values differ
    by ~1e-7 for ``|x - y|`` of 1e-3). The ratio is the same in world and
    unit coordinates (the normalisation is a uniform scale).

    Examples
    --------
    >>> from lipsdf.geometry.normalize import Normalization
    >>> from lipsdf.nn import build_model
    >>> config = {"arch": "sll", "dim": 2, "layers": 3, "width": 16}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(2), 5.0), config)
    >>> lipschitz_ratio(field, n_pairs=10_000) <= 1 + 1e-9
    True
    """
    rng = np.random.default_rng(seed)
    dim = field.dim
    x = rng.uniform(-1.0, 1.0, size=(n_pairs, dim))
    y = rng.uniform(-1.0, 1.0, size=(n_pairs, dim))
    close = np.arange(n_pairs) % 2 == 1
    directions = rng.normal(size=(int(close.sum()), dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    y[close] = x[close] + directions * 10.0 ** rng.uniform(-3.0, 0.0, size=(len(directions), 1))
    both = torch.from_numpy(np.vstack([x, y])).to(field.device)
    values = field.double().unit_values(both, batch_size).cpu().numpy()
    ratio = np.abs(values[:n_pairs] - values[n_pairs:]) / np.maximum(np.linalg.norm(x - y, axis=1), 1e-300)
    return float(ratio.max())


def _input_surface(shape: Shape, n: int, rng: np.random.Generator) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Points on the input shape with (unoriented) normals where a normal is defined.

    Point clouds give their own points (at most ``n``), with their normals or
    PCA estimates; 3D polylines have no normal.
    """
    if isinstance(shape, PointCloud):
        pick = rng.permutation(len(shape.points))[:n]
        normals = shape.normals if shape.normals is not None else estimate_normals(shape.points)
        return shape.points[pick], normals[pick]
    return surface_samples(shape, n, rng, unoriented=True)


def _contour_surface(field: NeuralField, contour: Shape, n: int, rng: np.random.Generator, batch_size: int):
    """Points and normals on the field's extracted level set, the unsigned one moved onto its zero set."""
    points, _ = surface_samples(contour, n, rng)
    normals = field.normals(points, batch_size=batch_size)
    if field.kind == "unsigned":
        # The level set sits at iso > 0 around the shape; a step of f down the gradient lands on f's zero set.
        points = points - field(points, batch_size=batch_size)[:, None] * normals
    return points, normals


def evaluate_field(field: NeuralField, shape: Shape, config: Optional[EvaluationConfig] = None,
                   contour: Optional[Shape] = None, batch_size: int = DEFAULT_BATCH_SIZE) -> Metrics:
    """Every metric of ``lipsdf eval`` for ``field`` against ``shape`` (world units, and as fractions of
    the shape's bounding-box diagonal where they are lengths).

    Parameters
    ----------
    field : a :class:`~lipsdf.field.NeuralField`.
    shape : the ground truth: Polyline, TriangleMesh or PointCloud (for point clouds, distances to the
        points; their sign, for signed fields, from the point cloud's winding number).
    config : sample sizes and seed.
    contour : the field's level set if already extracted: level 0, or for unsigned fields one grid
        cell of ``config.resolution`` (what ``lipsdf mesh`` extracts); extracted here otherwise.

    Returns
    -------
    :class:`~lipsdf.metrics.Metrics` with ``distance`` (``uniform``, ``near`` and ``all``: MAE, max error,
    sign accuracy),
    ``overestimate_fraction`` (share of points where ``|f|`` exceeds the true distance),
    ``gradient_norm`` statistics, ``lipschitz`` (largest pair ratio), ``surface`` (Chamfer L1/L2,
    Hausdorff, normal consistency) and ``seconds``.

    Examples
    --------
    >>> from lipsdf.geometry.normalize import Normalization
    >>> from lipsdf.geometry.primitives import circle
    >>> from lipsdf.nn import build_model
    >>> config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(2), 2.0), config, offset=-0.4)
    >>> small = EvaluationConfig(n_uniform=500, n_near=500, n_pairs=500, n_surface=500, resolution=64)
    >>> metrics = evaluate_field(field, circle(), small)
    >>> sorted(metrics.distance), metrics.lipschitz.max_ratio <= 1 + 1e-9
    (['all', 'near', 'uniform'], True)
    """
    config = config or EvaluationConfig()
    started = time.perf_counter()
    if shape.dim != field.dim:
        raise LipsdfError(f"the field is {field.dim}D but the shape is {shape.dim}D; evaluate it against the "
                          "shape it was trained on")
    signed = field.kind == "signed"
    if signed and not shape.has_inside:
        raise LipsdfError(f"a signed field needs a shape with an inside to compare signs, and this "
                          f"{shape.kind} has none; evaluate an unsigned field against it")
    rng = np.random.default_rng(config.seed)
    norm = field.normalization
    diagonal = bounding_box_diagonal(shape.vertices)
    truth = GroundTruth(shape, device=_geometry_device(field))
    shape = truth.oriented_shape  # a mesh's samples drawn as sampling drew them: an inverted copy measures the same
    unit_shape = shape.transformed(norm.to_unit)
    groups = {"uniform": norm.to_world(uniform_samples(config.n_uniform, field.dim, rng)),
              "near": norm.to_world(near_surface_samples(unit_shape, config.n_near, config.near_sigmas, rng))}
    points = np.vstack(list(groups.values()))
    distances = truth.signed_distance(points) if signed else truth.unsigned_distance(points)
    values = field(points, batch_size=batch_size)
    split = config.n_uniform
    errors = {name: DistanceErrors.of(values[part], distances[part], signed, diagonal)
              for name, part in (("uniform", slice(0, split)), ("near", slice(split, None)), ("all", slice(None)))}
    excess = np.abs(values) - np.abs(distances)
    gradient_norm = GradientStats.of(np.linalg.norm(field.gradient(points, batch_size=batch_size), axis=1))
    lipschitz = LipschitzCheck(config.n_pairs, lipschitz_ratio(field, config.n_pairs, config.seed, batch_size))

    surface = _surface_metrics(field, shape, truth, contour, config, rng, batch_size, diagonal)
    return Metrics(field.kind, field.arch, diagonal, errors, float((excess > 1e-6 * norm.scale).mean()),
                   float(max(excess.max(), 0.0)), gradient_norm, lipschitz, surface,
                   round(time.perf_counter() - started, 2))


def _geometry_device(field: NeuralField) -> Optional[str]:
    """Where the truth's distances are computed: a GPU field's device, libigl on the CPU otherwise."""
    return str(field.device) if field.device.type == "cuda" else None


def against_points_note(shape: Shape) -> Optional[str]:
    """For a point cloud as the truth, the line that says what its metrics measure (None for other shapes):
    distances to the points themselves, so a contour on the true surface still scores the points'
    spacing (their median nearest-neighbour distance, as a share of the diagonal).

    Examples
    --------
    >>> grid = np.stack(np.meshgrid(*[np.arange(5.0)] * 3), -1).reshape(-1, 3)
    >>> against_points_note(PointCloud(grid)).split(";")[0]
    'measured against the points themselves, 1 apart (14.43% of the diagonal)'
    """
    if not isinstance(shape, PointCloud):
        return None
    from scipy.spatial import cKDTree

    spacing = float(np.median(cKDTree(shape.points).query(shape.points, k=2, workers=-1)[0][:, 1]))
    return (f"measured against the points themselves, {spacing:.3g} apart "
            f"({100 * spacing / bounding_box_diagonal(shape.points):.2f}% of the diagonal); their spacing "
            "floors the Chamfer and distance errors: measure against a mesh of the true surface as the reference")


def _surface_metrics(field: NeuralField, shape: Shape, truth: GroundTruth, contour: Optional[Shape],
                     config: EvaluationConfig, rng: np.random.Generator, batch_size: int,
                     diagonal: float) -> Optional[SurfaceMetrics]:
    """Chamfer, Hausdorff and normal consistency of the field's contour against the shape (None when the
    field has no level set in its box)."""
    signed = field.kind == "signed"
    iso = default_level(field, config.resolution)
    if contour is None:
        contour = shape_contour(field, config.resolution, batch_size)
    if contour is None:  # the field has no level set in its box: nothing to compare
        return None
    ours, our_normals = _contour_surface(field, contour, config.n_surface, rng, batch_size)
    theirs, their_normals = _input_surface(shape, config.n_surface, rng)
    # Exact point-to-surface distances both ways (sample-to-sample distances would measure the samples'
    # spacing). An unsigned field's contour is an offset surface, ``iso`` away from its zero set.
    to_contour = GroundTruth(contour, device=_geometry_device(field)).unsigned_distance(theirs)
    if not signed:
        to_contour = np.abs(to_contour - iso)
    lengths = surface_distances(truth.unsigned_distance(ours), to_contour)
    consistency = (None if their_normals is None else
                   normal_consistency(ours, our_normals, theirs, their_normals))
    return SurfaceMetrics(**lengths, normal_consistency=consistency,
                          chamfer_l1_rel=lengths["chamfer_l1"] / diagonal,
                          hausdorff_rel=lengths["hausdorff"] / diagonal,
                          chamfer_l2_rel=lengths["chamfer_l2"] / diagonal ** 2)
