"""Scans: distances estimated from points and normals, and the fit they train, against an exact sphere."""

import numpy as np
import pytest

from lipsdf.geometry.distance import GroundTruth
from lipsdf.geometry.scan import ScanDistance
from lipsdf.geometry.shapes import PointCloud
from lipsdf.sampling import sample

RADIUS = 1.0
DIAGONAL = 2 * np.sqrt(3) * RADIUS


def noisy_sphere(n: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of the unit sphere moved by Gaussian noise of ``noise`` diagonals, and the true normals."""
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return RADIUS * normals + rng.normal(scale=noise * DIAGONAL, size=(n, 3)), normals


def _exact(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=1) - RADIUS


def test_estimated_distance_beats_the_nearest_point_near_a_noisy_sphere():
    points, normals = noisy_sphere(5_000, 0.002)
    rng = np.random.default_rng(1)
    near = points[rng.integers(0, len(points), 20_000)] * (1 + rng.normal(scale=0.01, size=(20_000, 1)))
    far = rng.uniform(-1.8, 1.8, size=(20_000, 3))
    scan = ScanDistance(points, normals)
    for queries in (near, far):
        truth = _exact(queries)
        estimate = scan(queries, far_sign=np.sign(truth))
        nearest = np.sign(truth) * GroundTruth(PointCloud(points)).unsigned_distance(queries)
        assert np.abs(estimate - truth).mean() <= np.abs(nearest - truth).mean() + 1e-12
    truth = _exact(near)
    estimate = scan(near, far_sign=np.sign(truth))
    nearest = GroundTruth(PointCloud(points)).unsigned_distance(near)
    # near the points, the tangent planes' average is about half as far from the truth as the points are,
    # and below the noise (whose mean size is 0.16% of the diagonal)
    assert np.abs(estimate - truth).mean() < 0.6 * np.abs(nearest - np.abs(truth)).mean()
    assert np.abs(estimate - truth).mean() < 0.001 * DIAGONAL


def test_a_point_cloud_samples_estimated_distances_signed_as_its_labels_away_from_the_noise():
    points, normals = noisy_sphere(3_000, 0.002)
    data = sample(PointCloud(points, normals), "signed", n=10_000, n_test=500, seed=0)
    world = data.world("points")
    distances = data.arrays["distances"] * data.normalization.scale
    assert np.mean(np.sign(distances) == data.arrays["labels"]) > 0.95  # they differ within the noise only
    far = np.abs(_exact(world)) > 0.02 * DIAGONAL
    assert np.mean(np.sign(distances[far]) == np.sign(_exact(world)[far])) > 0.999
    assert np.abs(distances - _exact(world)).mean() < 0.003 * DIAGONAL


def test_the_scan_recipe_fits_a_noisy_sphere(tmp_path):
    """Pins ``lipsdf fit``'s recipe for a scan (fit-hinge on estimated distances; its quick settings, for 40
    epochs on 20k points) against the exact sphere: distance errors near it and far, and how far the
    contour lies from it, below the points' noise (whose mean size is 0.16% of the diagonal)."""
    from lipsdf.geometry.io import load_shape
    from lipsdf.pipeline import fit

    points, normals = noisy_sphere(5_000, 0.002)
    result = fit(PointCloud(points, normals), tmp_path, quick=True, training={"epochs": 40},
                 sampling={"n": 20_000}, evaluation={"n_pairs": 2_000, "n_surface": 5_000})
    field = result.field
    assert field.summary["loss"] == "fit-hinge"
    x = np.random.default_rng(2).uniform(*field.normalization.world_bounds(), size=(20_000, 3))
    error = np.abs(field(x) - _exact(x))
    near = np.abs(_exact(x)) < 0.02 * DIAGONAL
    assert error.mean() < 0.06 * DIAGONAL and error[near].mean() < 0.007 * DIAGONAL  # 400 steps: still growing
    vertices = load_shape(result.files["contour"]).vertices
    assert np.abs(_exact(vertices)).mean() < 0.001 * DIAGONAL  # Chamfer's half from the contour side
    assert result.metrics.lipschitz.max_ratio <= 1 + 1e-6
