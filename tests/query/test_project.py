"""Projection onto iso-levels and surface sampling, against analytic distances."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from fields import SPHERE_CENTER, SPHERE_RADIUS, analytic_field
from lipsdf.errors import LipsdfError
from lipsdf.query.project import project, sample_surface
from conftest import torus_sdf

CENTER = np.array([1.0, 2.0, 3.0])


def test_projection_lands_on_the_closest_point_of_the_level_set():
    field = analytic_field("sphere", center=CENTER, scale=1.5)
    rng = np.random.default_rng(0)
    points = CENTER + rng.uniform(-1.4, 1.4, size=(5000, 3))
    points = points[np.linalg.norm(points - CENTER, axis=1) > 0.05]  # the centre has no closest point
    for iso in (0.0, 0.2):
        result = project(field, points, iso=iso)
        offset = points - CENTER
        expected = CENTER + offset / np.linalg.norm(offset, axis=1, keepdims=True) * (1.0 + iso)
        np.testing.assert_allclose(result.points, expected, atol=1e-5)
        np.testing.assert_allclose(result.distances, np.linalg.norm(offset, axis=1) - 1.0 - iso, atol=1e-5)
        assert result.residuals.max() < 1e-5


@pytest.mark.parametrize("iso", [0.0, -0.1, 0.05])
def test_surface_samples_lie_on_the_level_set_evenly_with_normals(iso):
    field = analytic_field("torus", center=CENTER, scale=1.5)
    samples = sample_surface(field, 2000, iso=iso, seed=0)
    truth = torus_sdf(samples.points - CENTER, 1.0, 0.35)
    assert np.abs(truth - iso).max() < 1e-5 and samples.max_residual < 1e-5
    # Normals: the analytic gradient, by central differences.
    step = 1e-5
    gradient = np.stack([(torus_sdf(samples.points - CENTER + step * e, 1.0, 0.35)
                          - torus_sdf(samples.points - CENTER - step * e, 1.0, 0.35)) / (2 * step)
                         for e in np.eye(3)], axis=1)
    assert (np.sum(samples.normals * gradient, axis=1) > 0.999).all()
    # Repulsion spreads them: nearest-neighbour distances vary far less than for random samples.
    random = sample_surface(field, 2000, iso=iso, seed=0, repulsion_steps=0)
    spread = [np.std(d) / np.mean(d) for d in
              (cKDTree(s.points).query(s.points, k=2)[0][:, 1] for s in (samples, random))]
    assert spread[0] < 0.5 * spread[1]
    # Every part of the torus is covered: the angle around its axis is near uniform.
    offset = samples.points - CENTER
    histogram = np.histogram(np.arctan2(offset[:, 1], offset[:, 0]), bins=8, range=(-np.pi, np.pi))[0]
    assert histogram.min() > 0.8 * 2000 / 8


def test_2d_surface_samples_and_seeds():
    field = analytic_field("circle", center=[40.0, -10.0], scale=7.0, radius=5.0)
    a = sample_surface(field, 300, seed=1)
    assert np.abs(np.linalg.norm(a.points - [40.0, -10.0], axis=1) - 5.0).max() < 1e-5
    np.testing.assert_array_equal(a.points, sample_surface(field, 300, seed=1).points)
    assert not np.array_equal(a.points, sample_surface(field, 300, seed=2).points)


def test_samples_of_a_trained_field_are_in_world_coordinates(trained_sphere):
    samples = sample_surface(trained_sphere, 1000, resolution=48)
    radius = np.linalg.norm(samples.points - SPHERE_CENTER, axis=1)
    assert np.abs(radius - SPHERE_RADIUS).max() < 0.03 * 2 * SPHERE_RADIUS
    assert samples.max_residual < 1e-4


def test_a_level_outside_the_field_range_is_a_clear_error():
    field = analytic_field("sphere", scale=1.5)
    with pytest.raises(LipsdfError, match="no level 9 inside its box"):
        sample_surface(field, 10, iso=9.0)
    with pytest.raises(LipsdfError, match="shape"):
        project(field, np.zeros((3, 2)))
