"""Metrics of a trained field against the shape it was trained on.

:func:`evaluate_field` is what ``lipsdf eval`` runs: distance errors on
uniform and near-surface points, gradient norms, the largest slope over
random pairs (a 1-Lipschitz field's is at most 1), and distances between the
field's extracted contour and the input (Chamfer, Hausdorff, normals). The
pieces are plain functions of arrays where they can be.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from scipy.spatial import cKDTree

from lipsdf.errors import LipsdfError


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


# --------------------------------------------------------------------------- a trained field against its shape


@dataclass
class EvaluationConfig:
    """How many points each metric of :func:`evaluate_field` uses.

    ``near_sigmas`` are Gaussian noise scales around the surface in unit-box
    units (the field's box is ``[-1, 1]^d`` there), as in sampling.
    ``resolution`` is the contour's grid (default: 128 in 3D, 512 in 2D).
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
                raise LipsdfError(f"{name.replace('_', ' ')} must be a positive number, got {getattr(self, name)}")


def lipschitz_ratio(field, n_pairs: int = 100_000, seed: int = 0, batch_size: int = 8192) -> float:
    """The largest ``|f(x) - f(y)| / |x - y|`` over random pairs in the field's box.

    Half the pairs are independent uniform points; the other half are a
    uniform point and a neighbour at a log-uniform distance from 1e-3 to 1
    (unit box), which probes the local slope. The network is evaluated in
    float64 so that rounding does not pose as a slope (float32 values differ
    by ~1e-7 for ``|x - y|`` of 1e-3). The ratio is the same in world and
    unit coordinates (the normalisation is a uniform scale).

    Examples
    --------
    >>> from lipsdf.field import NeuralField
    >>> from lipsdf.geometry.normalize import Normalization
    >>> from lipsdf.nn import build_model
    >>> config = {"arch": "sll", "dim": 2, "layers": 3, "width": 16}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(2), 5.0), config)
    >>> lipschitz_ratio(field, n_pairs=10_000) <= 1 + 1e-9
    True
    """
    import torch

    rng = np.random.default_rng(seed)
    dim = field.dim
    x = rng.uniform(-1.0, 1.0, size=(n_pairs, dim))
    y = rng.uniform(-1.0, 1.0, size=(n_pairs, dim))
    close = np.arange(n_pairs) % 2 == 1
    directions = rng.normal(size=(int(close.sum()), dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    y[close] = x[close] + directions * 10.0 ** rng.uniform(-3.0, 0.0, size=(len(directions), 1))
    module = copy.deepcopy(field.module).double()
    both, values = np.vstack([x, y]), []
    with torch.no_grad():
        for start in range(0, 2 * n_pairs, batch_size):
            batch = torch.from_numpy(both[start: start + batch_size]).to(field.device)
            values.append(module.unit(batch).cpu().numpy())
    values = np.concatenate(values)
    ratio = np.abs(values[:n_pairs] - values[n_pairs:]) / np.maximum(np.linalg.norm(x - y, axis=1), 1e-300)
    return float(ratio.max())


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


def _input_surface(shape, n: int, rng: np.random.Generator) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Points on the input shape with (unoriented) normals where a normal is defined.

    Point clouds give their own points (at most ``n``), with their normals or
    PCA estimates; 3D polylines have no normal.
    """
    from lipsdf.geometry.normals import estimate_normals
    from lipsdf.geometry.shapes import PointCloud
    from lipsdf.sampling import surface_samples

    if isinstance(shape, PointCloud):
        pick = rng.permutation(len(shape.points))[:n]
        normals = shape.normals if shape.normals is not None else estimate_normals(shape.points)
        return shape.points[pick], normals[pick]
    return surface_samples(shape, n, rng, unoriented=True)


def _contour_surface(field, contour, n: int, rng: np.random.Generator, batch_size: int):
    """Points and normals on the field's extracted level set, the unsigned one moved onto its zero set."""
    from lipsdf.sampling import surface_samples

    points, _ = surface_samples(contour, n, rng)
    gradients = field.gradient(points, batch_size=batch_size)
    normals = gradients / np.maximum(np.linalg.norm(gradients, axis=1, keepdims=True), 1e-12)
    if field.kind == "unsigned":
        # The level set sits at iso > 0 around the shape; a step of f down the gradient lands on f's zero set.
        points = points - field(points, batch_size=batch_size)[:, None] * normals
    return points, normals


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"min": float(values.min()), "median": float(np.median(values)), "mean": float(values.mean()),
            "max": float(values.max())}


def evaluate_field(field, shape, config: Optional[EvaluationConfig] = None, contour=None,
                   batch_size: int = 8192) -> dict[str, Any]:
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
    dict with ``distance`` (``uniform``, ``near`` and ``all``: MAE, max error, sign accuracy),
    ``overestimate_fraction`` (share of points where ``|f|`` exceeds the true distance),
    ``gradient_norm`` statistics, ``lipschitz`` (largest pair ratio), ``surface`` (Chamfer L1/L2,
    Hausdorff, normal consistency) and ``seconds``.

    Examples
    --------
    >>> from lipsdf.field import NeuralField
    >>> from lipsdf.geometry.normalize import Normalization
    >>> from lipsdf.geometry.primitives import circle
    >>> from lipsdf.nn import build_model
    >>> config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(2), 2.0), config, offset=-0.4)
    >>> small = EvaluationConfig(n_uniform=500, n_near=500, n_pairs=500, n_surface=500, resolution=64)
    >>> metrics = evaluate_field(field, circle(), small)
    >>> sorted(metrics["distance"]), metrics["lipschitz"]["max_ratio"] <= 1 + 1e-9
    (['all', 'near', 'uniform'], True)
    """
    from lipsdf.geometry.distance import GroundTruth
    from lipsdf.query.contour import contour as extract_contour, default_level
    from lipsdf.sampling import near_surface_samples, uniform_samples

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
    unit_shape = shape.transformed(norm.to_unit)
    groups = {"uniform": norm.to_world(uniform_samples(config.n_uniform, field.dim, rng)),
              "near": norm.to_world(near_surface_samples(unit_shape, config.n_near, config.near_sigmas, rng))}
    points = np.vstack(list(groups.values()))
    truth = GroundTruth(shape)
    distances = truth.signed_distance(points) if signed else truth.unsigned_distance(points)
    values = field(points, batch_size=batch_size)
    split = [0, config.n_uniform, len(points)]
    metrics: dict[str, Any] = {"kind": field.kind, "arch": field.arch, "diagonal": diagonal, "distance": {}}
    for name, (lo, hi) in zip(list(groups) + ["all"], [(0, split[1]), (split[1], split[2]), (0, split[2])]):
        metrics["distance"][name] = dict(distance_errors(values[lo:hi], distances[lo:hi], signed, diagonal),
                                         n=hi - lo)
    excess = np.abs(values) - np.abs(distances)
    metrics["overestimate_fraction"] = float((excess > 1e-6 * norm.scale).mean())
    metrics["overestimate_max"] = float(max(excess.max(), 0.0))
    metrics["gradient_norm"] = _stats(np.linalg.norm(field.gradient(points, batch_size=batch_size), axis=1))
    metrics["lipschitz"] = {"pairs": config.n_pairs,
                            "max_ratio": lipschitz_ratio(field, config.n_pairs, config.seed, batch_size)}

    iso = default_level(field, config.resolution)
    if contour is None:
        contour = extract_contour(field, iso, config.resolution, batch_size=batch_size).contours[0].shape
    if contour is None:
        metrics["surface"] = None  # the field has no level set in its box: nothing to compare
    else:
        ours, our_normals = _contour_surface(field, contour, config.n_surface, rng, batch_size)
        theirs, their_normals = _input_surface(shape, config.n_surface, rng)
        # Exact point-to-surface distances both ways (sample-to-sample distances would measure the samples'
        # spacing). An unsigned field's contour is an offset surface, ``iso`` away from its zero set.
        to_contour = GroundTruth(contour).unsigned_distance(theirs)
        if not signed:
            to_contour = np.abs(to_contour - iso)
        surface: dict[str, Any] = surface_distances(truth.unsigned_distance(ours), to_contour)
        surface["normal_consistency"] = (None if their_normals is None else
                                         normal_consistency(ours, our_normals, theirs, their_normals))
        for key in ("chamfer_l1", "hausdorff"):
            surface[f"{key}_rel"] = surface[key] / diagonal
        surface["chamfer_l2_rel"] = surface["chamfer_l2"] / diagonal ** 2
        metrics["surface"] = surface
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    return metrics


def metrics_table(metrics: dict[str, Any]) -> str:
    """The metrics of :func:`evaluate_field` as a plain-text table (lengths also as % of the diagonal).

    Examples
    --------
    >>> print(metrics_table({"diagonal": 2.0, "lipschitz": {"pairs": 10, "max_ratio": 0.5}}).splitlines()[-1])
    largest |f(x) - f(y)| / |x - y|  0.500000  over 10 random pairs
    """
    diagonal = metrics["diagonal"]
    rows: list[tuple[str, str, str]] = []

    def length(name: str, value: float) -> None:
        rows.append((name, f"{value:.4g}", f"{100 * value / diagonal:.3f}% of diagonal"))

    for group, values in metrics.get("distance", {}).items():
        length(f"mean |f - d|, {group} points", values["mae"])
        length(f"max |f - d|, {group} points", values["max_error"])
        if "sign_accuracy" in values:
            rows.append((f"sign accuracy, {group} points", f"{100 * values['sign_accuracy']:.2f}%", ""))
    if "overestimate_fraction" in metrics:
        rows.append(("|f| > true distance", f"{100 * metrics['overestimate_fraction']:.2f}%", "of the points"))
    if "gradient_norm" in metrics:
        g = metrics["gradient_norm"]
        rows.append(("gradient norm min / median / max", f"{g['min']:.3f} / {g['median']:.3f} / {g['max']:.3f}", ""))
    surface = metrics.get("surface")
    if surface:
        length("Chamfer L1 (contour vs input)", surface["chamfer_l1"])
        rows.append(("Chamfer L2 (contour vs input)", f"{surface['chamfer_l2']:.4g}",
                     f"{surface['chamfer_l2_rel']:.3g} of diagonal^2"))
        length("Hausdorff (contour vs input)", surface["hausdorff"])
        if surface["normal_consistency"] is not None:
            rows.append(("normal consistency", f"{surface['normal_consistency']:.4f}", ""))
    elif "surface" in metrics:
        rows.append(("contour", "empty", "the field has no level set in its box"))
    if "lipschitz" in metrics:
        rows.append(("largest |f(x) - f(y)| / |x - y|", f"{metrics['lipschitz']['max_ratio']:.6f}",
                     f"over {metrics['lipschitz']['pairs']} random pairs"))
    width = max(len(row[0]) for row in rows) + 2
    value_width = max(len(row[1]) for row in rows) + 2
    return "\n".join(f"{a:<{width}}{b:>{value_width - 2}}  {c}".rstrip() for a, b, c in rows)
