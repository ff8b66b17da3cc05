"""Sphere tracing against analytic ray intersections; cameras and shading."""

import numpy as np
import pytest

from conftest import torus_sdf
from fields import SPHERE_CENTER, SPHERE_RADIUS, analytic_field
from lipsdf.errors import LipsdfError
from lipsdf.query.trace import Camera, orbit_camera, sphere_trace, trace_image
from lipsdf.render import shade

CENTER = np.array([1.0, 2.0, 3.0])


def _sphere_intersection(origins, directions, center, radius):
    """First intersection distance of unit rays with a sphere (inf when missed), and the closest approach."""
    offset = origins - center
    b = np.sum(offset * directions, axis=1)
    closest = np.linalg.norm(offset - b[:, None] * directions, axis=1)
    disc = b ** 2 - (np.sum(offset ** 2, axis=1) - radius ** 2)
    t = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    return t, closest


def test_sphere_tracing_a_sphere_matches_the_analytic_intersections():
    field = analytic_field("sphere", center=CENTER, scale=1.5)
    camera = orbit_camera(CENTER, 1.0, azimuth=40, elevation=25, width=64, height=48)
    origins, directions = camera.rays()
    result = sphere_trace(field, origins, directions, epsilon=1e-6)
    t_true, closest = _sphere_intersection(origins, directions, CENTER, 1.0)
    assert not result.stepped_through.any()
    assert result.unfinished < 0.02 * len(origins)  # rays grazing the silhouette crawl along it
    assert result.hit[closest < 0.99].all() and not result.hit[closest > 1.01].any()
    hit = result.hit
    assert (result.depth[hit] <= t_true[hit] + 1e-6).all()  # never past the surface
    facing = hit & (closest < 0.9)  # away from grazing rays, the hit is within epsilon / cos of the truth
    np.testing.assert_allclose(result.depth[facing], t_true[facing], atol=1e-5)
    np.testing.assert_allclose(result.points[hit], origins[hit] + result.depth[hit, None] * directions[hit],
                               atol=1e-6)
    expected_normals = (result.points[hit] - CENTER) / np.linalg.norm(result.points[hit] - CENTER, axis=1)[:, None]
    np.testing.assert_allclose(result.normals[hit], expected_normals, atol=1e-4)
    assert 2 < result.mean_steps < 50


def test_sphere_tracing_a_torus_matches_a_brute_force_march():
    field = analytic_field("torus", center=CENTER, scale=1.5)
    camera = orbit_camera(CENTER, 1.4, azimuth=10, elevation=35, up=(0, 0, 1), width=40, height=40)
    origins, directions = camera.rays()
    result = sphere_trace(field, origins, directions, epsilon=1e-6, max_steps=500)
    # Truth: the first sign change on a fine march along each ray, refined by bisection.
    t = np.linspace(0.0, 8.0, 8001)
    values = torus_sdf((origins[:, None] + t[None, :, None] * directions[:, None] - CENTER).reshape(-1, 3),
                       1.0, 0.35).reshape(len(origins), -1)
    inside = values < 0
    crossing = inside.any(axis=1)
    first = np.argmax(inside, axis=1)
    low, high = t[np.maximum(first - 1, 0)], t[first]
    for _ in range(40):
        middle = 0.5 * (low + high)
        below = torus_sdf(origins + middle[:, None] * directions - CENTER, 1.0, 0.35) < 0
        high, low = np.where(below, middle, high), np.where(below, low, middle)
    clear = values.min(axis=1)  # how deep the ray goes: skip rays that only graze the surface
    assert not result.stepped_through.any()
    assert result.hit[clear < -0.01].all() and not result.hit[~crossing & (clear > 0.01)].any()
    both = result.hit & (clear < -0.01)
    assert (result.depth[both] <= high[both] + 1e-6).all()
    assert np.median(np.abs(result.depth[both] - high[both])) < 1e-5


def test_a_field_that_overestimates_distance_is_caught_stepping_through():
    field = analytic_field("sphere", center=CENTER, scale=1.5)
    field.module.model.sdf = lambda q, radius=1.0: 3.0 * (q.norm(dim=1) - radius)  # 3-Lipschitz
    camera = orbit_camera(CENTER, 1.0, width=32, height=32)
    result = sphere_trace(field, *camera.rays())
    assert result.stepped_through.sum() > 100


@pytest.mark.parametrize("lipschitz", [1.0, 3.0])
def test_compacting_the_rays_every_few_steps_answers_as_every_step(monkeypatch, lipschitz):
    """The march syncs with the host only to compact its rays; between compactions stopped rays are frozen,
    so hits, depths, step counts, rays through the surface and unfinished rays are those of a compaction
    after every step (max_steps 11 leaves the 1-Lipschitz field's rays unfinished between two compactions)."""
    import lipsdf.query.trace as trace

    field = analytic_field("sphere", center=CENTER, scale=1.5)
    field.module.model.sdf = lambda q, radius=1.0: lipschitz * (q.norm(dim=1) - radius)
    origins, directions = orbit_camera(CENTER, 1.0, azimuth=30, elevation=20, width=40, height=40).rays()
    answers = []
    for every in (1, trace.COMPACT_EVERY):
        monkeypatch.setattr(trace, "COMPACT_EVERY", every)
        answers.append(sphere_trace(field, origins, directions, max_steps=11, cone=2e-3))
    each, batched = answers
    assert batched.unfinished == each.unfinished and each.hit.any()
    assert (each.unfinished > 0, each.stepped_through.any()) == (lipschitz == 1, lipschitz > 1)
    for name in ("hit", "depth", "points", "normals", "steps", "stepped_through"):
        np.testing.assert_array_equal(getattr(batched, name), getattr(each, name), err_msg=name)


def test_traced_image_of_a_trained_field_is_in_world_coordinates(trained_sphere):
    camera = orbit_camera(SPHERE_CENTER, SPHERE_RADIUS, width=48, height=48)
    result = trace_image(trained_sphere, camera)
    assert result.hit.shape == (48, 48) and 0.3 < result.hit.mean() < 0.95
    radius = np.linalg.norm(result.points[result.hit] - SPHERE_CENTER, axis=1)
    assert np.abs(radius - SPHERE_RADIUS).max() < 0.05 * 2 * SPHERE_RADIUS
    assert not result.stepped_through.any()
    image = shade(result, camera)
    assert image.shape == (48, 48, 3) and 0 <= image.min() and image.max() <= 1
    assert image[result.hit].std() > 0.02  # shaded, not flat


def test_camera_rejects_impossible_views():
    with pytest.raises(LipsdfError, match="same point"):
        Camera(eye=(1, 1, 1), target=(1, 1, 1))
    with pytest.raises(LipsdfError, match="up direction"):
        Camera(eye=(0, 5, 0), target=(0, 0, 0), up=(0, 1, 0))
    with pytest.raises(LipsdfError, match="field of view"):
        Camera(eye=(0, 0, 5), target=(0, 0, 0), fov=200)
    with pytest.raises(LipsdfError, match="3D field"):
        sphere_trace(analytic_field("circle"), np.zeros((1, 2)), np.ones((1, 2)))
