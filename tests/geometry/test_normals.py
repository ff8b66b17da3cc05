import numpy as np
import pytest

from lipsdf.geometry.io import load_shape
from lipsdf.geometry.normals import estimate_normals, orient_normals, point_areas


def _sphere_points(n, seed=0, center=(0.0, 0.0, 0.0), radius=1.0):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True) * radius + np.asarray(center)


def test_pca_normals_of_a_sphere_are_radial():
    points = _sphere_points(5000)
    normals = estimate_normals(points)
    assert np.abs(np.sum(normals * points, axis=1)).min() > 0.98


def test_orientation_points_outward_on_every_component():
    a = _sphere_points(3000, seed=1, center=(-3.0, 0.0, 0.0))
    b = _sphere_points(2000, seed=2, center=(3.0, 0.0, 0.0), radius=0.5)
    points = np.vstack([a, b])
    radial = np.vstack([a - (-3.0, 0, 0), (b - (3.0, 0, 0)) / 0.5])
    random_flips = np.where(np.random.default_rng(3).random(len(points)) < 0.5, -1.0, 1.0)
    oriented = orient_normals(points, estimate_normals(points) * random_flips[:, None])
    assert np.all(np.sum(oriented * radial, axis=1) > 0)


def test_areas_add_up_to_the_surface_area():
    areas = point_areas(_sphere_points(20000, seed=4))
    assert areas.sum() == pytest.approx(4 * np.pi, rel=0.05)


def test_bunny_scan_normals_agree_with_the_mesh(shared_data):
    import igl
    from scipy.spatial import cKDTree

    mesh = load_shape(shared_data / "meshes" / "stanford-bunny.obj")
    scan = load_shape(shared_data / "pointclouds" / "bunny_scan_points.xyz")
    mesh_normals = igl.per_vertex_normals(mesh.vertices, mesh.faces)
    _, nearest = cKDTree(mesh.vertices).query(scan.points)
    normals = orient_normals(scan.points, estimate_normals(scan.points))
    agreement = np.mean(np.sum(normals * mesh_normals[nearest], axis=1) > 0)
    assert agreement >= 0.95
